"""The karrio adapter: the only code that knows karrio. `client.track` is its
entry; `shipments.carriers.tracking` is what it answers."""

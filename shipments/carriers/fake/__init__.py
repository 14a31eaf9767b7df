"""A local fake of the carriers' tracking APIs, for tests, the demo and the
benchmark: karrio's UPS, FedEx, USPS and DHL Express connectors talk to it as
they would to the carriers (`TRACKSOP_CARRIER_API_URLS`).

Each provider lives under its own prefix, answering the paths karrio calls
with the shapes of the carriers' documented samples (karrio's connector
tests; UPS Track API, FedEx Track API, USPS Tracking 3.0, DHL XML-PI
KnownTrackingRequest):

    /ups/security/v1/oauth/token          /ups/api/track/v1/details/<n>
    /fedex/oauth/token                    /fedex/track/v1/trackingnumbers
    /usps/oauth2/v3/token                 /usps/tracking/v3/tracking/<n>
    /dhl_express/XMLShippingServlet

So `TRACKSOP_CARRIER_API_URLS` is `{"ups": "http://127.0.0.1:P/ups", …}`
(`FakeCarrier.api_urls()`). Any credentials are accepted; tokens are
"fake-…" and any fake server accepts any of them.

Every tracking number gets a plausible journey derived from the number
(deterministic: origin, hub and destination, how far along it is), anchored
at the moment the server first hears of the number, so polling the same
number twice gives the same events and new ones appear as time passes:
label, picked up, departure, arrival and departure at a hub, arrival at the
destination, out for delivery, delivered. A number ending in "404" is
unknown to the carrier. "label_only" is a number the carrier knows with no
scan yet (FedEx: an empty scanEvents; DHL: a ShipmentInfo without events).

Control API (JSON bodies; also the `FakeCarrier` methods of the same names):

    POST /_fake/numbers/<n>  {"scenario": "unknown" | "delivered" | "exception"
                                           | "journey" | "label_only"}
                             or {"events": [{"kind": "picked_up", "hours_ago": 30,
                                 "place": {"code": "ATL", "city": "Atlanta",
                                           "region": "GA", "postcode": "30301",
                                           "country": "US", "offset": -5}}, …]}
        kinds: label, picked_up, arrived, departed, in_transit, out_for_delivery,
        delivered, attempted, exception, returned
    POST /_fake/mode         {"mode": "ok" | "wrong_credentials" | "rate_limited" |
                              "server_error" | "garbage" | "hang",
                              "provider": "ups" (default: all), "endpoint": "token" |
                              "track" (default: both), "retry_after": 7, "hang_s": 30}
    GET  /_fake/stats        {"requests": {"ups.token": 1, "ups.track": 3, …}}
    POST /_fake/reset        scripts, modes and counts forgotten

`python manage.py fake_carrier --port 8765 --delay-ms 100` runs it for the
demo and the benchmark; tests use `FakeCarrier()` (`server`) as a context
manager (the `fake_carrier` fixture).

The modules: `journeys` (where each number's package goes, when), `samples`
(the carriers' answers for a journey), `modes` (the failure modes' answers),
`server` (the state, the control API and the HTTP routes).
"""

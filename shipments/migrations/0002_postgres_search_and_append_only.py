from django.db import migrations

from tracksop.migration_ops import PostgresRunSQL

APPEND_ONLY = """
CREATE FUNCTION tracksop_event_append_only() RETURNS trigger AS $$
BEGIN
    -- Retention expiry (after archiving) sets this for its own transaction only.
    IF TG_OP = 'DELETE' AND current_setting('tracksop.retention_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'tracking events are append-only: record a correction instead'
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER tracksop_event_append_only
    BEFORE UPDATE OR DELETE ON shipments_trackingevent
    FOR EACH ROW EXECUTE FUNCTION tracksop_event_append_only();
"""


class Migration(migrations.Migration):
    dependencies = [("shipments", "0001_initial")]

    operations = [
        PostgresRunSQL(
            "CREATE EXTENSION IF NOT EXISTS pg_trgm;",
            reverse_sql=migrations.RunSQL.noop,
        ),
        # Search: tracking-number prefix (LIKE 'X%') under any collation, and
        # recipient name contains (ILIKE '%x%' as Django writes it: UPPER(...)).
        PostgresRunSQL(
            "CREATE INDEX shipment_tracking_prefix ON shipments_shipment "
            "(tracking_number varchar_pattern_ops);"
            "CREATE INDEX shipment_name_trgm ON shipments_shipment "
            "USING gin (UPPER(recipient_name::text) gin_trgm_ops);",
            reverse_sql="DROP INDEX shipment_tracking_prefix; DROP INDEX shipment_name_trgm;",
        ),
        PostgresRunSQL(
            APPEND_ONLY,
            reverse_sql="DROP TRIGGER tracksop_event_append_only ON shipments_trackingevent;"
            "DROP FUNCTION tracksop_event_append_only();",
        ),
    ]

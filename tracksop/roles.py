"""The staff roles of DESIGN.md as Django groups, and what each may do.

The data migration creates the groups from ROLE_PERMISSIONS; views check the
permissions, never group names, so a site can grant a person extra rights.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.apps.registry import Apps
    from django.db.backends.base.schema import BaseDatabaseSchemaEditor

LOGISTICS = "Logistics staff"
CUSTOMER_SERVICE = "Customer service"
SUPERVISOR = "Supervisor"
# Escalation level 2: supervisors' managers, who get what supervisors leave.
MANAGER = "Manager"

_VIEW = [
    "shipments.view_shipment",
    "shipments.view_trackingevent",
    "shipments.view_carrier",
    "shipments.view_location",
    "notifications.view_notification",
    "exceptions_mgmt.view_deliveryexception",
    "exceptions_mgmt.work_exception",
    "shipments.view_inquiry",
    "shipments.view_feedback",
]
# The customer service desk: log what customers ask and what they were told.
_DESK = ["shipments.add_inquiry", "shipments.answer_inquiry"]
_LOGISTICS = [
    *_VIEW,
    "shipments.add_shipment",
    "shipments.change_shipment",
    "shipments.verify_shipment",
    "shipments.dispatch_shipment",
    "shipments.cancel_shipment",
    "shipments.record_checkpoint",
]

_SUPERVISOR = [
    *_LOGISTICS,
    *_DESK,
    "shipments.correct_event",
    "shipments.add_carrier",
    "shipments.change_carrier",
    "shipments.add_location",
    "shipments.change_location",
    "notifications.resend_notification",
    "notifications.preview_template",
    "notifications.view_messagetemplate",
    "notifications.add_messagetemplate",
    "notifications.change_messagetemplate",
    "notifications.delete_messagetemplate",
    "exceptions_mgmt.supervise_exception",
    "exceptions_mgmt.view_escalationrule",
    "exceptions_mgmt.add_escalationrule",
    "exceptions_mgmt.change_escalationrule",
    "exceptions_mgmt.delete_escalationrule",
    "reports.request_report",
    "reports.view_reportrun",
    "reports.view_reportschedule",
    "reports.change_reportschedule",
    "reports.view_holiday",
    "reports.add_holiday",
    "reports.change_holiday",
    "reports.delete_holiday",
    "shipments.view_access_log",
]

# Roles whose members also work in /admin/ (is_staff), on what their group's
# model permissions allow: carriers, hubs, message templates and escalation
# rules; never users or groups, which stay with superusers.
ADMIN_ROLES = frozenset({SUPERVISOR, MANAGER})

ROLE_PERMISSIONS: dict[str, list[str]] = {
    LOGISTICS: _LOGISTICS,
    CUSTOMER_SERVICE: [*_VIEW, *_DESK, "notifications.resend_notification"],
    SUPERVISOR: _SUPERVISOR,
    MANAGER: _SUPERVISOR,
}


def sync_roles_after_migrate(**kwargs: object) -> None:
    """post_migrate: keep the groups after a flush (tests) or a new permission."""
    from django.apps import apps

    sync_role_groups(apps)


def sync_role_groups(
    apps: Apps, schema_editor: BaseDatabaseSchemaEditor | None = None
) -> None:
    """Create or update the role groups. Used by migrations, so it takes `apps`."""
    from django.contrib.auth.management import create_permissions

    for config in apps.get_app_configs():
        # Migration-state app configs have no models module, which makes
        # create_permissions skip them; lend them one for the call (it only
        # tests that there is one, so True serves).
        original = getattr(config, "models_module", None)
        config.models_module = original or True  # type: ignore[assignment]
        create_permissions(config, verbosity=0, apps=apps)
        config.models_module = original
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    # Inside a migration, models of later migrations have no permission
    # yet: those are left for the post_migrate sync, which runs when every
    # migration is in and so insists on each.
    strict = schema_editor is None
    for role, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        wanted = []
        for dotted in perms:
            app_label, codename = dotted.split(".")
            found = Permission.objects.filter(
                content_type__app_label=app_label, codename=codename
            ).first()
            if found is None and strict:
                raise Permission.DoesNotExist(f"No permission {dotted}")
            if found is not None:
                wanted.append(found)
        group.permissions.set(wanted)

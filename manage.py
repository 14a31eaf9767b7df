#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    # A checkout gets debug settings; deployments set tracksop.settings.base.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tracksop.settings.dev")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

"""`manage.py train` and `manage.py metrics`."""

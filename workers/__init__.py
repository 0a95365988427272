"""The Celery side of mover: the app, its tasks, the autoscale controller and launchers."""

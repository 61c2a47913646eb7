"""Deployment targets outside the Python process: Azure ML specs rendered from the settings.

Kept apart from the code that serves and trains: nothing here runs unless a deployment verb
(``fatigue-guard azureml ...``) or ``FATIGUE_GUARD_RETRAIN_TRIGGER=azureml`` asks for it, and the
Azure SDKs it needs are imported only then.
"""

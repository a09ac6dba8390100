"""Scale-out: Hydra launchers (joblib, submitit, Ray) and GPU placement of a sweep's parallel jobs."""

"""Using a result: export a mask to other training code, predict with a run's model."""

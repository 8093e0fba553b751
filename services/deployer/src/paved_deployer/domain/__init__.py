"""Pure deployer logic: tensor checking, status transitions, admission and reconcile plans."""

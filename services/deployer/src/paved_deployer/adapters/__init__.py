"""Deployment targets behind `paved_deployer.ports.DeployTarget`, one module per target."""

"""Paved deployer: one process per target; deploys approved model versions and reports status."""

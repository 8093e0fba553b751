"""Pure approval logic: the policy, the decision rules and the version hash. No I/O."""

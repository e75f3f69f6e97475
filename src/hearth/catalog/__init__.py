"""The catalog: the models an organisation serves, the hardware it runs them on and what
that costs, and the deployments that put a model on hardware with an engine."""

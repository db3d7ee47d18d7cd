"""The fixtures of edgedev.testing (brokers) for every test under this tree."""

pytest_plugins = ("edgedev.testing",)

"""Mock targets: the scenario builder and the shipped scenarios."""

"""The operator layer: the `alpr` CLI, the runner and the migrations. The only code that imports every service."""

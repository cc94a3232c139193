.PHONY: help install sweep test test-all ui web benchmark tracking-server tracking-server-stop tracking-server-status
help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-21s %s\n", $$1, $$2}'
install:  ## install profcast, its test tools, the PyTorch collector and the parallel/cluster launchers
	pip install -e ".[test,torch,scale]"
sweep:  ## the four study regressors on the embedded default, anchor g3s.xlarge
	python -m profcast.train -m regressor=rf,knn,dt,lr anchor=g3s.xlarge
test:  ## the fast tier: every test but the real sweeps and real-data jobs (-m "not slow")
	python -m pytest -m "not slow"
test-all:  ## the whole suite, as CI runs it
	python -m pytest
ui:  ## the MLflow UI on this project's runs
	mlflow ui  # MLflow's default store ./mlflow.db is where profcast logs
web:  ## the forecast page at http://127.0.0.1:8000 (the champion of the chosen anchor; docs/web.md)
	python -m profcast.web
benchmark:  ## accuracy benchmark on the real PROFET data (../shared)
	python -m benchmarks.accuracy --json benchmarks/results/accuracy-profiles.json
tracking-server:  ## shared MLflow server on PostgreSQL, also after a crash (PROFCAST_SERVER_PORT, PROFCAST_SERVER_DIR; docs/cluster.md)
	python -m profcast.hosting.tracking_server start
tracking-server-stop:  ## stop the shared tracking server and its PostgreSQL (or clear what a crash of either left)
	python -m profcast.hosting.tracking_server stop
tracking-server-status:  ## is the shared tracking server up, and if not, what is down (exit 1)
	python -m profcast.hosting.tracking_server status

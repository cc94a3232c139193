.PHONY: help install sweep test test-integration test-e2e test-all test-shuffled ui web benchmark tracking-server tracking-server-stop tracking-server-status
help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-21s %s\n", $$1, $$2}'
install:  ## install profcast, its test tools, the PyTorch collector and the parallel/cluster launchers
	pip install -e ".[test,torch,scale]"
sweep:  ## the four study regressors on the embedded default, anchor g3s.xlarge
	python -m profcast.train -m regressor=rf,knn,dt,lr anchor=g3s.xlarge
test:  ## the default tier: in-process tests only (docs/testing.md)
	python -m pytest
test-integration:  ## the tests that start a process, a server or a browser (two workers, pytest-xdist)
	python -m pytest -m integration -n 2 --dist loadgroup
test-e2e:  ## real sweeps, real data, real training jobs end to end (two workers, pytest-xdist)
	python -m pytest -m e2e -n 2 --dist loadgroup
test-all:  ## every tier, as CI runs them: the default tier first (fails fast), then the others on two workers
	python -m pytest
	python -m pytest -m "(integration or e2e) and not alone" -n 2 --dist loadgroup
	python -m pytest -m alone
test-shuffled:  ## the default tier in a random order (pytest-randomly; the seed is printed)
	python -m pytest -p randomly
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

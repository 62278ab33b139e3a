GO      ?= go
BIN     ?= bin/runbook
PKGS    ?= ./...
TESTFLAGS ?= -race -count=1 -timeout 14m

.PHONY: demo all build install test test-deps test-short e2e bench fuzz fmt lint proto docs clean

all: build

## build: a static binary (no cgo): it starts faster, and every builtin plugin
## is this binary started again.
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo +dirty)
build:
	CGO_ENABLED=0 $(GO) build -ldflags "-X main.commit=$(COMMIT)" -o $(BIN) ./cmd/runbook

# install: runbook into $(go env GOBIN) or $(go env GOPATH)/bin.
install:
	CGO_ENABLED=0 $(GO) install -ldflags "-X main.commit=$(COMMIT)" ./cmd/runbook

## test: install and start-able test servers, then the whole suite with -race.
test: test-deps
	$(GO) vet $(PKGS)
	$(GO) test $(TESTFLAGS) $(PKGS)

test-deps:
	./scripts/test-deps.sh

## e2e: the proofs too long for `make test`: 1,000 campaign runs over 4
## worker processes, one killed with kill -9, and a PostgreSQL restart.
E2E_CAMPAIGN_RUNS ?= 1000
e2e: test-deps
	RUNBOOK_CAMPAIGN_RUNS=$(E2E_CAMPAIGN_RUNS) $(GO) test -count=1 -timeout 20m -v \
		-run 'TestFleetSurvivesKilledWorkerAndDatabaseRestart' ./engine/campaign/e2e/

## test-short: unit tests only, no servers.
test-short:
	$(GO) test -short -count=1 $(PKGS)

bench: build test-deps
	./scripts/bench.sh

FUZZTIME ?= 5m
fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

fmt:
	gofmt -w $$(git ls-files '*.go')

## lint: gofmt, go vet (here and for darwin and windows), staticcheck, and
## builds of the CLI for the systems operators use.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	GOOS=darwin $(GO) vet $(PKGS)
	GOOS=windows $(GO) build ./cmd/... ./engine/... ./sdk/... ./plugins/...
	for os in linux darwin windows; do GOOS=$$os GOARCH=amd64 CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/runbook || exit 1; done
	@deps=$$($(GO) list -deps ./engine/... ./sdk/... | grep '/plugins/' || true); if [ -n "$$deps" ]; then echo "the engine or the sdk imports plugins:"; echo "$$deps"; exit 1; fi
	@deps=$$($(GO) list -test -deps ./plugins/... | grep '/runbook/engine/' || true); if [ -n "$$deps" ]; then echo "a plugin (or its tests) imports the engine:"; echo "$$deps"; exit 1; fi
	$(GO) run $(STATICCHECK) $(PKGS)

proto:
	./scripts/proto.sh

docs: build
	$(BIN) docs

clean:
	rm -rf bin

## demo: build and run the quick-start runbook (no server needed).
demo: build
	$(BIN) apply -auto-approve runbooks/examples/quickstart.hcl

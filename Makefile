# felix — see README.md. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -s -w -X github.com/felix-ops/felix/version.Version=$(VERSION)
BIN := bin
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
PROTO_TOOLS := $(abspath $(BIN)/tools)
# The packages with Windows code (build-tagged files), vetted for windows by check.
WINDOWS_PKGS := ./cmd/minion ./cmd/felix ./config ./exec/local ./facts ./daemon ./daemon/selfupdate ./hostfile ./model

.PHONY: bench-restart bench-upgrade bench-pkg bench-apply help build test demo proto check bench bench-ssh bench-files bench-scale dist deps clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build master, minion and felix into bin/ (the minion static, without cgo)
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/master ./cmd/master
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/felix ./cmd/felix
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/minion ./cmd/minion

deps: ## install what the tests need (Debian packages; needs root when something is missing)
	@bash scripts/deps.sh

test: deps ## run every test with the race detector
	$(GO) test -race -count=1 -timeout 30m ./...

demo: build ## start a master and three minions on loopback, accept them, run an exec, push and fetch a file, stop them
	@bash scripts/demo.sh

proto: ## regenerate the protobuf code with protoc and pinned plugins
	@mkdir -p $(PROTO_TOOLS)
	GOBIN=$(PROTO_TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(PROTO_TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH=$(PROTO_TOOLS):$$PATH protoc -I proto \
		--go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative \
		proto/felix/v1/*.proto

check: deps proto ## gofmt, go vet (also for windows), the windows minion and felix builds, dependency guard, and fail if regenerated protobuf differs
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: files above need formatting'; exit 1; }
	$(GO) vet ./...
	GOOS=windows GOARCH=amd64 $(GO) vet $(WINDOWS_PKGS)
	for arch in amd64 arm64; do \
		GOOS=windows GOARCH=$$arch CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/minion || exit 1; \
		GOOS=windows GOARCH=$$arch CGO_ENABLED=0 $(GO) build -o /dev/null ./cmd/felix || exit 1; \
	done
	$(GO) test -count=1 -run 'TestMinionDeps|TestLayers|TestCheckCatches' ./cmd/minion/ ./internal/layers/
	@git diff --exit-code -- proto && test -z "$$(git status --porcelain -- proto)" || { git status --short -- proto; echo 'make proto changed the generated code: commit it'; exit 1; }

bench: ## exec fan-out through a real master to 100 and 1000 minions, and a 1000-host job with its callback
	$(GO) test -run '^$$' -bench 'BenchmarkExecFanout|BenchmarkJobWithCallback' -benchtime 5x -timeout 20m ./master/

bench-ssh: build ## `true` on 200 SSH hosts: felix cold and warm vs parallel-ssh, pdsh and clush (one local sshd), then through one bastion
	@bash scripts/bench-ssh.sh

bench-files: build ## felix cp of a 100 MiB file to 50 minions and 50 SSH hosts vs parallel-scp: MiB/s, master peak RSS
	@bash scripts/bench-files.sh

bench-scale: build ## a master against a swarm of SIZES minions: registration, exec walls, hosts by state, RSS and CPU
	@bash scripts/bench-scale.sh

bench-pkg: build ## felix pkg install on 50 minions twice (the second all unchanged, no apt run) vs felix exec -- apt-get install (root)
	@bash scripts/bench-pkg.sh

bench-apply: build ## a 20-resource state on 50 minions (first, again all unchanged, dry run) vs ansible-playbook on 50 SSH hosts (root)
	@bash scripts/bench-apply.sh

bench-restart: build ## reconnect storms: a master restarted with N (1000) swarm minions up, and after an outage in which the swarm restarted (OLD=main: before/after)
	@bash scripts/bench-restart.sh

bench-upgrade: build ## felix minions upgrade --batch 10% of 100 separate minion processes from version A to B: wall time, outcomes
	@bash scripts/bench-upgrade.sh

dist: ## static minion binaries for linux/amd64 and linux/arm64, master and felix for this platform, the systemd units, felix's man pages (dist/man), in dist/
	@mkdir -p dist
	for arch in amd64 arm64; do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/minion-linux-$$arch ./cmd/minion || exit 1; \
	done
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/master ./cmd/master
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/felix ./cmd/felix
	$(GO) run ./cmd/master unit master > dist/felix-master.service
	$(GO) run ./cmd/master unit minion > dist/felix-minion.service
	rm -rf dist/man && dist/felix __man dist/man
	cd dist && sha256sum minion-* master felix *.service > SHA256SUMS

clean: ## remove build output
	rm -rf $(BIN) dist

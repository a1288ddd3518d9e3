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

.PHONY: FORCE bench-restart bench-upgrade bench-pkg bench-apply help build test demo proto check bench bench-ssh bench-files bench-scale dist deps clean

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
	@# The minion for FreeBSD and macOS: its packages vet, and the tests of its host-side packages compile
	@# (go test -c). The minion package is built, not vetted: its tests use the master's SQLite inventory (cgo).
	for os in freebsd darwin; do \
		CGO_ENABLED=0 GOOS=$$os GOARCH=arm64 $(GO) build -o /dev/null ./cmd/minion || exit 1; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=arm64 $(GO) vet ./cmd/minion/... ./transport/agent/... ./facts/... ./exec/... ./hostfile/... ./daemon/... || exit 1; \
		for p in ./transport/agent ./facts ./exec/local ./hostfile ./daemon; do \
			CGO_ENABLED=0 GOOS=$$os GOARCH=arm64 $(GO) test -c -o /dev/null $$p || exit 1; \
		done; \
	done
	@# The felix CLI for operators' laptops.
	for p in darwin/amd64 darwin/arm64 windows/amd64 windows/arm64; do \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) vet ./cmd/felix/ ./cli/... && \
		CGO_ENABLED=0 GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -o /dev/null ./cmd/felix || exit 1; \
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

# The platforms make dist builds, as GOOS/GOARCH pairs (add one and it is built,
# summed and checked by TestDist). Minions are static (CGO_ENABLED=0); arm is
# GOARM=7. The master needs cgo (go-sqlite3): it is built for this host and
# for linux/arm64 only where aarch64-linux-gnu-gcc is installed.
MINION_PLATFORMS ?= linux/amd64 linux/arm64 linux/386 linux/arm linux/ppc64le linux/s390x linux/riscv64 \
	freebsd/amd64 freebsd/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
FELIX_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64
HOST_PLATFORM := $(shell $(GO) env GOOS)/$(shell $(GO) env GOARCH)
MASTER_PLATFORMS ?= $(HOST_PLATFORM) $(if $(and $(filter linux/amd64,$(HOST_PLATFORM)),$(shell command -v aarch64-linux-gnu-gcc)),linux/arm64)
DIST ?= dist
DIST_CHECK ?= 1 # empty: make dist does not run TestDist on its output
# exe names a binary for platform $(2) of program $(1): dist/minion-linux-arm64, dist/felix-windows-amd64.exe.
exe = $(DIST)/$(1)-$(subst /,-,$(2))$(if $(filter windows/%,$(2)),.exe)
DIST_FILES := $(foreach p,$(MINION_PLATFORMS),$(call exe,minion,$(p))) \
	$(foreach p,$(FELIX_PLATFORMS),$(call exe,felix,$(p))) $(foreach p,$(MASTER_PLATFORMS),$(call exe,master,$(p))) \
	$(if $(MASTER_PLATFORMS),$(DIST)/felix-master.service $(DIST)/felix-minion.service)
# platform turns the stem linux-arm64(.exe) into GOOS=linux GOARCH=arm64.
platform = GOOS=$(word 1,$(subst -, ,$(basename $(1)))) GOARCH=$(word 2,$(subst -, ,$(basename $(1))))

dist: ## minions for every platform in MINION_PLATFORMS, felix for FELIX_PLATFORMS, the master, the systemd units, SHA256SUMS in dist/, checked by TestDist (make -j2 dist)
	@$(MAKE) --no-print-directory $(DIST_FILES)
	cd $(DIST) && sha256sum $(notdir $(DIST_FILES)) > SHA256SUMS
	@# felix's man pages, written by the felix built for this machine.
	$(if $(filter $(HOST_PLATFORM),$(FELIX_PLATFORMS)),rm -rf $(DIST)/man && $(call exe,felix,$(HOST_PLATFORM)) __man $(DIST)/man)
	$(if $(DIST_CHECK),FELIX_DIST=$(abspath $(DIST)) MINION_PLATFORMS='$(MINION_PLATFORMS)' FELIX_PLATFORMS='$(FELIX_PLATFORMS)' \
		MASTER_PLATFORMS='$(MASTER_PLATFORMS)' $(GO) test -count=1 -run '^TestDist$$' ./cmd/minion/)

$(DIST)/minion-%: FORCE
	@mkdir -p $(DIST)
	CGO_ENABLED=0 GOARM=7 $(call platform,$*) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/minion
$(DIST)/felix-%: FORCE
	@mkdir -p $(DIST)
	CGO_ENABLED=0 GOARM=7 $(call platform,$*) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/felix
$(DIST)/master-%: FORCE
	@mkdir -p $(DIST)
	CGO_ENABLED=1 $(call platform,$*) $(if $(filter-out $(HOST_PLATFORM),$(subst -,/,$*)),CC=aarch64-linux-gnu-gcc) \
		$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/master
$(DIST)/felix-%.service: $(call exe,master,$(HOST_PLATFORM))
	$< unit $* > $@

FORCE:

clean: ## remove build output
	rm -rf $(BIN) dist

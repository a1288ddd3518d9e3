#!/usr/bin/env bash
# Installs the Debian packages felix's tests use, when missing and running as
# root: openssh-server (sshd, for the agentless tests), dropbear-bin (Dropbear,
# a server without sftp-server), protobuf-compiler
# and libprotobuf-dev (make proto / make check), iproute2 (network namespaces for bootstrap) and
# sudo (the become option).
set -euo pipefail
need=()
command -v protoc >/dev/null || need+=(protobuf-compiler)
# protoc's well-known types (google/protobuf/duration.proto) for make proto.
[ -f /usr/include/google/protobuf/duration.proto ] || need+=(libprotobuf-dev)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
# dropbear and dropbearkey: the agentless tests' server without sftp-server.
[ -x /usr/sbin/dropbear ] || need+=(dropbear-bin)
command -v ip >/dev/null || need+=(iproute2)
command -v sudo >/dev/null || need+=(sudo)
command -v setsid >/dev/null || need+=(util-linux)
# The windows/amd64 minion runs under Wine in e2e (TestWindowsMinionUnderWine):
# wine for the wine command, wine64 for the 64-bit loader.
{ command -v wine >/dev/null && [ -x /usr/lib/wine/wine64 ]; } || need+=(wine wine64)
# dpkg-deb and dpkg-scanpackages: the package tests' local apt repository.
command -v dpkg-scanpackages >/dev/null || need+=(dpkg-dev)
# dnf, rpm (rpm and rpmbuild) and createrepo-c: the real dnf test in an install root.
command -v dnf >/dev/null || need+=(dnf)
command -v rpmbuild >/dev/null || need+=(rpm)
command -v createrepo_c >/dev/null || need+=(createrepo-c)
# zypper, and pacman with repo-add and bsdtar: the real zypper and pacman tests
# in install roots.
command -v zypper >/dev/null || need+=(zypper)
command -v repo-add >/dev/null || need+=(pacman-package-manager)
# repo-add sources makepkg's library (a Recommends of pacman, which
# --no-install-recommends leaves out).
[ -f /usr/share/makepkg/util/compress.sh ] || need+=(makepkg)
command -v bsdtar >/dev/null || need+=(libarchive-tools)
# systemd-analyze verify checks the units make dist ships (the package only
# installs files in a container: nothing starts it as PID 1).
command -v systemd-analyze >/dev/null || need+=(systemd)
# chromium: the web dashboard's end-to-end test drives it headless (chromedp).
command -v chromium >/dev/null || need+=(chromium)
# bash, zsh and fish load felix's completion scripts; groff checks the man
# pages make dist writes (the cli tests).
command -v bash >/dev/null || need+=(bash)
# the bash-completion package: the generated bash script needs it, as in a user's shell.
[ -f /usr/share/bash-completion/bash_completion ] || need+=(bash-completion)
command -v zsh >/dev/null || need+=(zsh)
command -v fish >/dev/null || need+=(fish)
command -v groff >/dev/null || need+=(groff-base)
# qemu-aarch64-static and qemu-s390x-static: the e2e test that runs the
# linux/arm64 and linux/s390x minions (TestForeignArchMinions); make: TestDist.
command -v qemu-aarch64-static >/dev/null && command -v qemu-s390x-static >/dev/null || need+=(qemu-user-static)
command -v make >/dev/null || need+=(make)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "missing packages: ${need[*]} (install them with apt-get as root)" >&2
	# In CI a missing dependency is a failure, never a silent skip.
	[ "${CI:-}" = true ] && exit 1
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

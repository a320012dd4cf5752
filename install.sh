#!/bin/sh
# Installs the oai-compliance-logs standalone binary for this machine. From a GitHub release (its
# notes give this line with the repository filled in):
#
#   curl -fsSL https://github.com/<owner>/<repo>/releases/latest/download/install.sh | sh
#
# From a clone, after building (`deno task build`, or `--target linux-x64` for one binary):
#
#   sh install.sh --from dist
#
# It picks the release binary for this OS and CPU (Linux x64/arm64 with glibc or musl; macOS on
# Intel or Apple silicon, also from a shell running under Rosetta; Windows x64/arm64 from Git Bash,
# MSYS2 or Cygwin), downloads it and SHA256SUMS (or copies them from --from DIR), refuses it unless
# its SHA-256 is the one listed, checks that it runs, and moves it into place as
# `oai-compliance-logs` in ~/.local/bin. When any step fails, nothing is installed and an existing
# copy is left as it was.
#
# Options:
#   --from DIR                        install from a local directory holding one release's files
#                                     (the binaries under their release names, and SHA256SUMS),
#                                     such as a clone's dist/ after `deno task build`
#
# Settings (environment variables, all optional):
#   OAI_COMPLIANCE_LOGS_VERSION       the release to install, e.g. v0.1.0 (default: the latest)
#   OAI_COMPLIANCE_LOGS_INSTALL       the directory to install into (default: ~/.local/bin)
#   OAI_COMPLIANCE_LOGS_DOWNLOAD_URL  a directory URL holding one release's files (as --from),
#                                     used instead of GitHub: a mirror, an internal server, an
#                                     air-gapped copy.
#   OAI_COMPLIANCE_LOGS_REPO          the GitHub repository of the releases (default: DEFAULT_REPO)
#   OAI_COMPLIANCE_LOGS_GITHUB_URL    the GitHub server, for GitHub Enterprise Server
#                                     (default: https://github.com)
# With --from or a download URL, OAI_COMPLIANCE_LOGS_VERSION is checked against what the binary
# reports, since the directory holds a single release.
#
# The checksum proves the binary is intact and is the file SHA256SUMS names; both come from the
# same place, so it guards against corrupt, truncated or mixed-up downloads, not against a release
# that was tampered with at its source.
#
# Needs: curl or wget (not with --from); sha256sum, shasum or openssl; uname, mkdir, mv, chmod.
# The tests (tests/binaries/install.test.ts) run it under dash and bash against a local server.

# The repository the releases come from: empty in the source, where nothing else names it either.
# The release workflow (.github/workflows/ci.yml) writes the repository it publishes from into
# this line of the install.sh it attaches to the release, so that the release's copy needs nothing.
DEFAULT_REPO=""

TOOL=oai-compliance-logs

say() { printf '%s\n' "$*"; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

# The platform as the release names it: linux-x64, linux-arm64-musl, darwin-arm64, windows-x64...
detect_platform() {
  uname_s=$(uname -s 2>/dev/null) || uname_s=unknown
  uname_m=$(uname -m 2>/dev/null) || uname_m=unknown
  case $uname_s in
    Linux) os=linux ;;
    Darwin) os=darwin ;;
    MINGW* | MSYS* | CYGWIN* | Windows_NT) os=windows ;;
    *) os="" ;;
  esac
  case $uname_m in
    x86_64 | amd64 | x64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) arch="" ;;
  esac
  if [ -z "$os" ] || [ -z "$arch" ]; then
    unsupported "$uname_s $uname_m"
  fi
  case $os in
    darwin)
      # A shell under Rosetta sees x86_64; the native arm64 binary is the one to install.
      if [ "$arch" = x64 ] && [ "$(sysctl -n sysctl.proc_translated 2>/dev/null)" = 1 ]; then
        arch=arm64
      fi
      ;;
    windows)
      # Git Bash is an x64 program, emulated on Windows on ARM: ask Windows what it runs on.
      case ${PROCESSOR_ARCHITEW6432:-${PROCESSOR_ARCHITECTURE:-}} in
        ARM64 | arm64) arch=arm64 ;;
      esac
      ;;
    linux)
      # A 64-bit kernel with a 32-bit user space (e.g. 32-bit Raspberry Pi OS) reports aarch64,
      # but cannot run a 64-bit program.
      if [ "$arch" = arm64 ] && [ "$(getconf LONG_BIT 2>/dev/null)" = 32 ]; then
        unsupported "Linux $uname_m with a 32-bit user space"
      fi
      ;;
  esac
  platform=$os-$arch
  if [ "$os" = linux ] && [ "$(linux_libc)" = musl ]; then
    platform=$platform-musl
  fi
  ext=""
  if [ "$os" = windows ]; then ext=.exe; fi
}

unsupported() {
  die "no $TOOL binary for $1: there are builds for Linux x64 and arm64 (glibc and musl), macOS x64 and arm64, and Windows x64 and arm64; elsewhere, build from source (docs/BINARIES.md)"
}

# musl (Alpine, distroless static) or glibc. ldd says which libc it belongs to; without ldd, a
# musl loader and no glibc one means musl. (Debian's `musl` package adds a musl loader next to
# glibc's, so the loader alone does not decide.)
linux_libc() {
  ldd_says=$(ldd --version 2>&1 </dev/null) || true
  case $ldd_says in
    *musl* | *MUSL* | *Musl*)
      echo musl
      return
      ;;
    *GLIBC* | *glibc* | *"GNU libc"* | *"GNU C Library"*)
      echo glibc
      return
      ;;
  esac
  if getconf GNU_LIBC_VERSION >/dev/null 2>&1; then
    echo glibc
    return
  fi
  for loader in /lib/ld-musl-*.so.1; do
    if [ -e "$loader" ]; then
      for glibc_loader in /lib64/ld-linux-*.so.2 /lib/ld-linux-*.so.* /lib/*-linux-gnu/ld-linux-*; do
        if [ -e "$glibc_loader" ]; then
          echo glibc
          return
        fi
      done
      echo musl
      return
    fi
  done
  echo glibc
}

# download URL FILE: fails (with curl's or wget's own message on stderr) on any error, 404 included.
download() {
  if have curl; then
    if [ "${2##*/}" != SHA256SUMS ] && [ -t 2 ]; then progress=--progress-bar; else progress=--silent; fi
    case $1 in
      # Once on https, never follow a redirect to plain http.
      https://*) curl --fail --location --show-error $progress --retry 3 --proto =https --output "$2" "$1" ;;
      *) curl --fail --location --show-error $progress --retry 3 --output "$2" "$1" ;;
    esac
  elif have wget; then
    wget -q -O "$2" "$1"
  else
    die "neither curl nor wget is installed; install one of them and run this again"
  fi
}

sha256_of() {
  if have sha256sum; then
    sha256sum <"$1" | cut -d ' ' -f 1
  elif have shasum; then
    shasum -a 256 <"$1" | cut -d ' ' -f 1
  elif have openssl; then
    openssl dgst -sha256 <"$1" | sed 's/^.* //'
  fi
}

# A new empty file in DIR (same file system as the destination, so the final mv is a rename).
make_temp() {
  n=0
  while [ "$n" -lt 100 ]; do
    candidate="$1/.$TOOL.$$.$n.tmp$2"
    if (set -C && : >"$candidate") 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
    [ -d "$1" ] && [ -w "$1" ] || return 1
    n=$((n + 1))
  done
  return 1
}

cleanup() {
  if [ -n "${tmp_bin:-}" ]; then rm -f "$tmp_bin"; fi
  if [ -n "${tmp_sums:-}" ]; then rm -f "$tmp_sums"; fi
}

path_advice() {
  shown=$1
  if [ -n "${HOME:-}" ]; then
    case $1 in
      "$HOME"/*) shown="\$HOME/${1#"$HOME"/}" ;;
    esac
  fi
  login_shell=${SHELL:-sh}
  # The file is shown to the user, who types it: `~` is meant literally here.
  # shellcheck disable=SC2088
  case ${login_shell##*/} in
    fish)
      say "$1 is not on your PATH. Add it with:"
      say "  fish_add_path \"$shown\""
      return
      ;;
    zsh) rc="~/.zshrc" ;;
    bash) if [ "$os" = darwin ]; then rc="~/.bash_profile"; else rc="~/.bashrc"; fi ;;
    *) rc="~/.profile" ;;
  esac
  say "$1 is not on your PATH. Add it with:"
  say "  echo 'export PATH=\"$shown:\$PATH\"' >> $rc"
  say "and open a new shell (or run: export PATH=\"$1:\$PATH\")."
}

usage() {
  say "usage: install.sh [--from DIR]"
  say "  --from DIR  install from a local directory holding one release's files (SHA256SUMS and"
  say "              the binaries), such as a clone's dist/ after 'deno task build'"
  say "Settings: OAI_COMPLIANCE_LOGS_VERSION, _INSTALL, _DOWNLOAD_URL, _REPO, _GITHUB_URL (see the"
  say "comment at the top of this script)."
}

# fetch NAME FILE: the release file NAME, from --from DIR or downloaded from $base.
fetch() {
  if [ -n "$from" ]; then
    cp -- "$from/$1" "$2" 2>/dev/null
  else
    download "$base/$1" "$2"
  fi
}

main() {
  set -u
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  from=""
  while [ $# -gt 0 ]; do
    case $1 in
      --from)
        [ $# -ge 2 ] && [ -n "$2" ] || die "--from needs a directory, e.g. --from dist"
        from=$2
        shift 2
        ;;
      --from=*)
        from=${1#--from=}
        [ -n "$from" ] || die "--from needs a directory, e.g. --from dist"
        shift
        ;;
      -h | --help)
        usage
        exit 0
        ;;
      *) die "unknown argument '$1' (usage: install.sh [--from DIR])" ;;
    esac
  done

  version=${OAI_COMPLIANCE_LOGS_VERSION:-latest}
  case $version in
    latest) ;;
    [0-9]*) version=v$version ;;
  esac
  case $version in
    latest) ;;
    v[0-9]*)
      case $version in
        *[!A-Za-z0-9._+-]*) die "OAI_COMPLIANCE_LOGS_VERSION must be a release tag such as v0.1.0, got '$version'" ;;
      esac
      ;;
    *) die "OAI_COMPLIANCE_LOGS_VERSION must be a release tag such as v0.1.0, got '$version'" ;;
  esac

  detect_platform
  asset=$TOOL-$platform$ext

  if [ -n "$from" ]; then
    [ -d "$from" ] || die "--from $from: no such directory (build first: deno task build)"
    from=$(cd "$from" && pwd) || die "cannot enter $from"
    base=$from
  elif [ -n "${OAI_COMPLIANCE_LOGS_DOWNLOAD_URL:-}" ]; then
    base=${OAI_COMPLIANCE_LOGS_DOWNLOAD_URL%/}
  else
    repo=${OAI_COMPLIANCE_LOGS_REPO:-$DEFAULT_REPO}
    case $repo in
      "")
        die "this install.sh is a clone's copy, which names no release to download: build and install from dist/ (deno task build, then sh install.sh --from dist), or set OAI_COMPLIANCE_LOGS_REPO=<owner>/<name> or OAI_COMPLIANCE_LOGS_DOWNLOAD_URL"
        ;;
      */*/* | */ | /* | *[!A-Za-z0-9._/-]*)
        die "OAI_COMPLIANCE_LOGS_REPO must be <owner>/<name>, got '$repo'"
        ;;
      */*) ;;
      *) die "OAI_COMPLIANCE_LOGS_REPO must be <owner>/<name>, got '$repo'" ;;
    esac
    github=${OAI_COMPLIANCE_LOGS_GITHUB_URL:-https://github.com}
    github=${github%/}
    if [ "$version" = latest ]; then
      base=$github/$repo/releases/latest/download
    else
      base=$github/$repo/releases/download/$version
    fi
  fi

  have sha256sum || have shasum || have openssl ||
    die "cannot verify the checksum: none of sha256sum, shasum or openssl is installed"
  if [ -z "$from" ]; then
    have curl || have wget || die "neither curl nor wget is installed; install one of them and run this again"
  fi

  if [ -n "${OAI_COMPLIANCE_LOGS_INSTALL:-}" ]; then
    dir=$OAI_COMPLIANCE_LOGS_INSTALL
  elif [ -n "${HOME:-}" ]; then
    dir=$HOME/.local/bin
  else
    die "HOME is not set: set OAI_COMPLIANCE_LOGS_INSTALL to the directory to install into"
  fi
  mkdir -p "$dir" 2>/dev/null || die "cannot create $dir: set OAI_COMPLIANCE_LOGS_INSTALL to a directory you can write to"
  dir=$(cd "$dir" && pwd) || die "cannot enter $dir"
  dest=$dir/$TOOL$ext

  tmp_bin=$(make_temp "$dir" "$ext") ||
    die "cannot write to $dir: set OAI_COMPLIANCE_LOGS_INSTALL to a directory you can write to"
  tmp_sums=$(make_temp "$dir" "") || die "cannot write to $dir"

  say "Installing $TOOL ($platform) from $base"
  if [ -n "$from" ]; then
    fetch SHA256SUMS "$tmp_sums" ||
      die "cannot read $from/SHA256SUMS (build first: deno task build); nothing was installed"
  else
    fetch SHA256SUMS "$tmp_sums" ||
      die "cannot download $base/SHA256SUMS$( [ "$version" = latest ] || [ -n "${OAI_COMPLIANCE_LOGS_DOWNLOAD_URL:-}" ] || printf '%s' " (is $version a release?)" ); nothing was installed"
  fi
  expected=$(tr -d '\r' <"$tmp_sums" | awk -v name="$asset" '
    { file = $2; sub(/^\*/, "", file); if (file == name) { print tolower($1); exit } }')
  if [ -z "$expected" ]; then
    case $platform in
      *-musl) die "$base/SHA256SUMS lists no $asset: this release has no musl build for this machine (the glibc one does not run on musl); nothing was installed" ;;
      *) die "$base/SHA256SUMS lists no $asset: this release has no binary for $platform$( [ -z "$from" ] || printf '%s' " (build it: deno task build --target $platform)" ); nothing was installed" ;;
    esac
  fi
  case $expected in
    *[!0-9a-f]*) die "$base/SHA256SUMS has no valid SHA-256 for $asset; nothing was installed" ;;
  esac
  [ ${#expected} -eq 64 ] || die "$base/SHA256SUMS has no valid SHA-256 for $asset; nothing was installed"

  fetch "$asset" "$tmp_bin" || die "cannot $( [ -n "$from" ] && printf read || printf download ) $base/$asset; nothing was installed"
  actual=$(sha256_of "$tmp_bin" | tr 'A-F' 'a-f')
  [ -n "$actual" ] || die "cannot compute the SHA-256 of $tmp_bin; nothing was installed"
  if [ "$actual" != "$expected" ]; then
    die "checksum mismatch for $asset: SHA256SUMS says $expected, the download is $actual; refusing to install it (nothing was installed)"
  fi

  chmod 755 "$tmp_bin" || die "cannot make $tmp_bin executable"
  # Run it before it replaces anything: a binary this machine cannot run is not installed.
  if ! reported=$("$tmp_bin" --version </dev/null 2>&1); then
    case $platform in
      # The musl builds need musl's C++ runtime, which minimal images leave out.
      *-musl) hint=" (on Alpine it needs libstdc++: apk add libstdc++)" ;;
      *) hint="" ;;
    esac
    die "the downloaded $asset (checksum OK) does not run on this machine$hint: $reported; nothing was installed"
  fi
  if [ "$version" != latest ]; then
    case "$reported " in
      "$TOOL ${version#v} "*) ;;
      *) die "asked for $version, but $base holds $reported; nothing was installed" ;;
    esac
  fi
  mv -f "$tmp_bin" "$dest" || die "cannot move the new binary to $dest; nothing was installed"
  tmp_bin=""

  say "Installed $reported to $dest (SHA-256 verified)"
  case ":${PATH:-}:" in
    *":$dir:"* | *":$dir/:"*)
      found=$(command -v "$TOOL$ext" 2>/dev/null || true)
      if [ -n "$found" ] && [ "$found" != "$dest" ]; then
        say "Note: $found comes first on your PATH and is what '$TOOL' runs."
      else
        say "Run: $TOOL --help"
      fi
      ;;
    *) path_advice "$dir" ;;
  esac
}

# Everything runs from here, so a download cut short (curl ... | sh) runs nothing at all.
main "$@"

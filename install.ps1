# Installs the oai-compliance-logs standalone binary for this Windows machine, from a GitHub
# release (its notes give this line with the repository filled in):
#
#   irm https://github.com/<owner>/<repo>/releases/latest/download/install.ps1 | iex
#
# It picks the release binary for this CPU (windows-x64 or windows-arm64), downloads it and
# SHA256SUMS, refuses it unless its SHA-256 is the one listed, checks that it runs, and moves it
# into place as oai-compliance-logs.exe in ~\.local\bin. When any step fails, nothing is installed
# and an existing copy is left as it was. Windows PowerShell 5.1 and PowerShell 7 both work.
#
# Settings (environment variables, all optional), as for install.sh:
#   OAI_COMPLIANCE_LOGS_VERSION       the release to install, e.g. v0.1.0 (default: the latest)
#   OAI_COMPLIANCE_LOGS_INSTALL       the directory to install into (default: ~\.local\bin)
#   OAI_COMPLIANCE_LOGS_DOWNLOAD_URL  a directory URL holding one release's files (the binaries
#                                     under their release names, and SHA256SUMS), used instead of
#                                     GitHub: a mirror, an internal server, an air-gapped copy.
#                                     OAI_COMPLIANCE_LOGS_VERSION is then checked against what the
#                                     binary reports, since the directory holds a single release.
#   OAI_COMPLIANCE_LOGS_REPO          the GitHub repository of the releases (default: $DefaultRepo)
#   OAI_COMPLIANCE_LOGS_GITHUB_URL    the GitHub server, for GitHub Enterprise Server
#                                     (default: https://github.com)
#
# An error is one line on the error stream and then a thrown error, never `exit`, so that
# `irm ... | iex` in an open console does not close it; `powershell -Command "irm ... | iex"` still
# ends with a non-zero exit code.
#
# The checksum proves the binary is intact and is the file SHA256SUMS names; both come from the
# same place, so it guards against corrupt, truncated or mixed-up downloads, not against a release
# that was tampered with at its source. Tested on windows-latest by .github/workflows/ci.yml.

# The repository the releases come from: empty in the source, where nothing else names it either.
# The release workflow (.github/workflows/ci.yml) writes the repository it publishes from into
# this line of the install.ps1 it attaches to the release; a clone's copy asks for
# OAI_COMPLIANCE_LOGS_REPO or _DOWNLOAD_URL instead.
$DefaultRepo = ""

# One plain line on the error stream (no PowerShell decoration or wrapping to read through), then
# a terminating error: the script stops, and `powershell -Command` exits non-zero.
function Fail([string]$Message) {
  $Host.UI.WriteErrorLine("error: $Message")
  throw "oai-compliance-logs was not installed (the error is above)"
}

function Install-OaiComplianceLogs {
  $ErrorActionPreference = "Stop"
  # Invoke-WebRequest's progress bar slows Windows PowerShell 5.1 downloads tenfold.
  $ProgressPreference = "SilentlyContinue"
  $tool = "oai-compliance-logs"

  $onWindows = ($PSVersionTable.PSEdition -eq "Desktop") -or $IsWindows
  if (-not $onWindows) {
    Fail "install.ps1 is for Windows; on Linux and macOS use install.sh: curl -fsSL <release URL>/install.sh | sh"
  }

  $machine = $env:PROCESSOR_ARCHITEW6432
  if (-not $machine) { $machine = $env:PROCESSOR_ARCHITECTURE }
  try {
    # The OS's own architecture, also from an x64 PowerShell emulated on Windows on ARM.
    $osArch = [System.Runtime.InteropServices.RuntimeInformation]::OSArchitecture.ToString()
    if ($osArch) { $machine = $osArch }
  } catch {}
  switch -Regex ($machine) {
    "^(AMD64|X64)$" { $arch = "x64" }
    "^ARM64$" { $arch = "arm64" }
    default {
      Fail "no $tool binary for Windows on $machine`: there are builds for Windows x64 and arm64, Linux and macOS; elsewhere, build from source (docs/BINARIES.md)"
    }
  }
  $platform = "windows-$arch"
  $asset = "$tool-$platform.exe"

  $version = $env:OAI_COMPLIANCE_LOGS_VERSION
  if (-not $version) { $version = "latest" }
  if ($version -match "^[0-9]") { $version = "v$version" }
  if ($version -ne "latest" -and $version -notmatch "^v[0-9][A-Za-z0-9._+-]*$") {
    Fail "OAI_COMPLIANCE_LOGS_VERSION must be a release tag such as v0.1.0, got '$version'"
  }

  if ($env:OAI_COMPLIANCE_LOGS_DOWNLOAD_URL) {
    $base = $env:OAI_COMPLIANCE_LOGS_DOWNLOAD_URL.TrimEnd("/")
  } else {
    $repo = $env:OAI_COMPLIANCE_LOGS_REPO
    if (-not $repo) { $repo = $DefaultRepo }
    if (-not $repo) {
      Fail "this install.ps1 is a clone's copy, which names no release to download: set OAI_COMPLIANCE_LOGS_REPO=<owner>/<name>, or OAI_COMPLIANCE_LOGS_DOWNLOAD_URL to a directory holding the release files (a clone's dist/ after deno task build can be served with: deno run -A tests/helpers/release_server.ts dist)"
    }
    if ($repo -notmatch "^[A-Za-z0-9._-]+/[A-Za-z0-9._-]+$") {
      Fail "OAI_COMPLIANCE_LOGS_REPO must be <owner>/<name>, got '$repo'"
    }
    $github = $env:OAI_COMPLIANCE_LOGS_GITHUB_URL
    if (-not $github) { $github = "https://github.com" }
    $github = $github.TrimEnd("/")
    if ($version -eq "latest") {
      $base = "$github/$repo/releases/latest/download"
    } else {
      $base = "$github/$repo/releases/download/$version"
    }
  }

  $dir = $env:OAI_COMPLIANCE_LOGS_INSTALL
  if (-not $dir) { $dir = Join-Path $HOME ".local\bin" }
  try {
    $dir = (New-Item -ItemType Directory -Force -Path $dir).FullName.TrimEnd("\")
  } catch {
    Fail "cannot create $dir`: set OAI_COMPLIANCE_LOGS_INSTALL to a directory you can write to"
  }
  $dest = Join-Path $dir "$tool.exe"

  # Windows PowerShell 5.1 may default to TLS 1.0, which GitHub refuses.
  if ($PSVersionTable.PSEdition -eq "Desktop") {
    [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor
      [Net.SecurityProtocolType]::Tls12
  }

  # Temporary files in the target directory, so the final move is a rename on one volume.
  $stamp = [Guid]::NewGuid().ToString("N").Substring(0, 12)
  $tmpBin = Join-Path $dir ".$tool.$stamp.tmp.exe"
  $tmpSums = Join-Path $dir ".$tool.$stamp.SHA256SUMS.tmp"
  try {
    Write-Host "Installing $tool ($platform) from $base"
    try {
      Invoke-WebRequest -UseBasicParsing -Uri "$base/SHA256SUMS" -OutFile $tmpSums
    } catch {
      $hint = if ($version -ne "latest") { " (is $version a release?)" } else { "" }
      Fail "cannot download $base/SHA256SUMS$hint`: $($_.Exception.Message); nothing was installed"
    }
    $expected = $null
    foreach ($line in Get-Content -LiteralPath $tmpSums) {
      $fields = $line.Trim() -split "\s+"
      if ($fields.Count -ge 2 -and $fields[1].TrimStart("*") -eq $asset) {
        $expected = $fields[0].ToLowerInvariant()
        break
      }
    }
    if (-not $expected) {
      Fail "$base/SHA256SUMS lists no $asset`: this release has no binary for $platform; nothing was installed"
    }
    if ($expected -notmatch "^[0-9a-f]{64}$") {
      Fail "$base/SHA256SUMS has no valid SHA-256 for $asset; nothing was installed"
    }

    try {
      Invoke-WebRequest -UseBasicParsing -Uri "$base/$asset" -OutFile $tmpBin
    } catch {
      Fail "cannot download $base/$asset`: $($_.Exception.Message); nothing was installed"
    }
    $actual = (Get-FileHash -Algorithm SHA256 -LiteralPath $tmpBin).Hash.ToLowerInvariant()
    if ($actual -ne $expected) {
      Fail "checksum mismatch for $asset`: SHA256SUMS says $expected, the download is $actual; refusing to install it (nothing was installed)"
    }

    # Run it before it replaces anything: a binary this machine cannot run is not installed.
    $reported = $null
    try {
      # Under "Stop", Windows PowerShell 5.1 turns any stderr line of a program into an exception.
      $ErrorActionPreference = "Continue"
      $reported = (& $tmpBin --version 2>&1 | Out-String).Trim()
      $ran = $LASTEXITCODE -eq 0
      $ErrorActionPreference = "Stop"
    } catch {
      $reported = $_.Exception.Message
      $ran = $false
    }
    if (-not $ran) {
      Fail "the downloaded $asset (checksum OK) does not run on this machine: $reported; nothing was installed"
    }
    if ($version -ne "latest" -and -not "$reported ".StartsWith("$tool $($version.Substring(1)) ")) {
      Fail "asked for $version, but $base holds $reported; nothing was installed"
    }

    try {
      Move-Item -Force -LiteralPath $tmpBin -Destination $dest
    } catch {
      # A running .exe cannot be replaced, but it can be renamed out of the way.
      $old = Join-Path $dir ".$tool.$stamp.old.exe"
      try {
        Move-Item -Force -LiteralPath $dest -Destination $old
        Move-Item -Force -LiteralPath $tmpBin -Destination $dest
        Remove-Item -Force -LiteralPath $old -ErrorAction SilentlyContinue
      } catch {
        Fail "cannot replace $dest (is it running?): $($_.Exception.Message); nothing was installed"
      }
    }
  } finally {
    Remove-Item -Force -LiteralPath $tmpBin, $tmpSums -ErrorAction SilentlyContinue
  }

  Write-Host "Installed $reported to $dest (SHA-256 verified)"
  $onPath = ($env:Path -split ";") | Where-Object { $_ -and $_.TrimEnd("\") -ieq $dir }
  if ($onPath) {
    Write-Host "Run: $tool --help"
  } else {
    Write-Host "$dir is not on your PATH. Add it for your account with:"
    Write-Host "  [Environment]::SetEnvironmentVariable('Path', `"$dir;`" + [Environment]::GetEnvironmentVariable('Path', 'User'), 'User')"
    Write-Host "and open a new terminal (or run: `$env:Path = `"$dir;`$env:Path`")."
  }
}

Install-OaiComplianceLogs

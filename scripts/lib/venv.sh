# Sourced by the scripts that need Python packages in a throw-away venv.
#
#   new_venv DIR   makes a venv at DIR, first installing Debian's venv support (python3-venv)
#                  when python3 lacks it, as scripts/setup.sh installs its packages.

new_venv() {
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    local sudo="" pkgs
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    pkgs=(python3-venv "python3.$(python3 -c 'import sys; print(sys.version_info[1])')-venv")
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${pkgs[@]}" ||
      { $sudo apt-get update && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${pkgs[@]}"; }
  fi
  python3 -m venv "$1"
}

# Sourced by scripts/install-mlflow.sh and scripts/install-tritonclient.sh: one pinned Python venv under
# ${FEDGE_CACHE_DIR:-~/.cache/fedge}, rebuilt only when its stamp (which names the pinned version) is missing.
#
#   pinned_venv TOOL VERSION VENV_NAME CHECK -- PIP_SPEC...
# TOOL/VERSION name the stamp and the messages; CHECK is a python statement run in the new venv (e.g. an import).

pinned_venv() {
  local tool="$1" version="$2" name="$3" check="$4"
  shift 5
  local venv="${FEDGE_CACHE_DIR:-$HOME/.cache/fedge}/$name"
  local stamp="$venv/.fedge-$tool-$version"
  if [[ -f "$stamp" && -x "$venv/bin/python" ]]; then
    echo "install-$tool: $tool $version is already in $venv"
    return 0
  fi
  command -v python3 >/dev/null 2>&1 || { echo "install-$tool: python3 is needed to install $tool" >&2; return 1; }
  local start
  start=$(date +%s)
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
  "$venv/bin/python" -c "$check"
  touch "$stamp"
  echo "install-$tool: installed $tool $version in $venv in $(( $(date +%s) - start )) s"
}

#!/usr/bin/env bash
# Start-up of the command line, this checkout against another one, side by side (alternating launches):
#   git worktree add /tmp/before <commit> && benchmarks/startup.sh /tmp/before [launches]
# Times `mnistlab --cfg job` and a shell-completion query (what each TAB runs). Uses this checkout's venv.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
before="$1"
n="${2:-5}"
py="$here/.venv/bin/python"
cd "$(mktemp -d)"  # not a checkout: the current directory comes first on sys.path
entry() {  # the command line's entry point in a checkout, where each version of mnistlab had it
    if [[ -f "$1/mnistlab/commands/main.py" ]]; then echo "mnistlab.commands.main"
    elif [[ -f "$1/mnistlab/cli.py" ]]; then echo "mnistlab.cli"; else echo "mnistlab.train"; fi
}
launch() {  # checkout, then mnistlab's arguments
    local root="$1"
    shift
    PYTHONPATH="$root" COMP_LINE="mnistlab model=" "$py" -c "import sys; sys.argv[0] = 'mnistlab'; from $(entry "$root") import cli; cli()" "$@" >/dev/null 2>&1
}
for what in "--cfg job" "-sc query=bash"; do
    for _ in $(seq "$n"); do
        for root in "$before" "$here"; do
            start=$(date +%s.%N)
            # shellcheck disable=SC2086
            launch "$root" $what
            printf '%-16s %-8s %.2f s\n' "$what" "$([[ $root == "$here" ]] && echo now || echo before)" "$(echo "$(date +%s.%N) - $start" | bc)"
        done
    done
done

# SPDX-License-Identifier: BSD-2-Clause
# Sourced by the bench/ scripts whose --update-docs writes a section of
# docs/benchmarks.md.

# bench_put_section DOC HEADING SECTION [BEFORE]: replaces the section of
# DOC whose heading line matches the regex HEADING (up to the next "## "
# heading) by the file SECTION; without such a section, puts it before
# the first line matching the regex BEFORE, or at the end.
bench_put_section() {
    local doc=$1 heading=$2 section=$3 before=${4:-}
    local has
    has=$(grep -c "$heading" "$doc" || true)
    awk -v file="$section" -v has="$has" -v heading="$heading" -v before="$before" '
        function put() { while ((getline line < file) > 0) print line; print ""; done = 1 }
        $0 ~ heading { put(); skip = 1; next }
        skip && /^## / { skip = 0 }
        !has && !done && before != "" && $0 ~ before { put() }
        !skip { print }
        END { if (!done) { print ""; put() } }' "$doc" >"$doc.new"
    mv "$doc.new" "$doc"
}

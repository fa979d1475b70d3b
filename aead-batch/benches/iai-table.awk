# Turns `cargo bench -p aead-batch --bench iai` output into a table of instructions per packet
# (each benchmark processes 64 packets; batch 0 is ring, one packet per call).
# Usage: cargo bench -p aead-batch --bench iai 2>&1 | awk -f aead-batch/benches/iai-table.awk
/^iai::aead::(seal|open) / {
    split($1, a, "::"); op = a[3]
    s = $0; sub(/.*\(/, "", s); sub(/\).*/, "", s); split(s, m, ", "); size = m[1]; batch = m[2]
}
/^  Instructions:/ {
    split($2, v, "|"); n[op, size, batch] = v[1] / 64
    if (!((op, size) in seen)) { seen[op, size] = 1; order[++k] = op SUBSEP size }
}
END {
    print "| op | size | ring | batch 1 | batch 8 | batch 32 | batch 64 | ring / batch 64 |"
    print "| --- | --- | --- | --- | --- | --- | --- | --- |"
    for (i = 1; i <= k; i++) {
        split(order[i], p, SUBSEP); o = p[1]; s = p[2]
        printf "| %s | %s | %d | %d | %d | %d | %d | %.2f |\n", o, (s == 0 ? "IMIX" : s "B"), \
            n[o, s, 0], n[o, s, 1], n[o, s, 8], n[o, s, 32], n[o, s, 64], n[o, s, 0] / n[o, s, 64]
    }
}

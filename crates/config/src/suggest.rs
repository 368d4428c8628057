//! "Did you mean ...?" for keys and elements a reader does not know: a name one or two
//! edits (insertions, deletions, substitutions, swaps of neighbours) from a known one is
//! most likely a typo of it ("memroy" → "memory").

/// Edit distance with adjacent transpositions (optimal string alignment), on bytes.
pub fn distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The known name `word` is most likely a typo of: within one edit for short names, two
/// for names of six characters or more; the closest wins, the first listed on a tie.
/// Names longer than 64 bytes get no suggestion (no quadratic work on hostile input).
pub fn did_you_mean<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    if word.len() > 64 || word.len() < 3 {
        return None;
    }
    let limit = if word.len() >= 6 { 2 } else { 1 };
    known
        .iter()
        .filter(|k| **k != word)
        .map(|k| (distance(word, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_found_and_strangers_are_not() {
        let known = [
            "memory", "vcpus", "kernel", "ramdisk", "extra", "cpus", "maxmem",
        ];
        assert_eq!(did_you_mean("memroy", &known), Some("memory"));
        assert_eq!(did_you_mean("kernal", &known), Some("kernel"));
        assert_eq!(did_you_mean("ramdsik", &known), Some("ramdisk"));
        assert_eq!(did_you_mean("vcpu", &known), Some("vcpus"));
        assert_eq!(did_you_mean("colour", &known), None);
        assert_eq!(did_you_mean("memory", &known), None);
        assert_eq!(did_you_mean("xy", &known), None);
        assert_eq!(did_you_mean(&"m".repeat(1000), &known), None);
        assert_eq!(distance("ab", "ba"), 1);
        assert_eq!(distance("", "abc"), 3);
    }
}

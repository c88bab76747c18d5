//! Parsing helpers every reader shares: kernel numbers, USER_HZ, `key value` lookups and PSI files.
//! A leaf: it imports nothing from the crate.

/// A kernel counter or gauge field: digits with an optional sign and decimal point. Rejects `inf`, `NaN`
/// and exponents, which a kernel file never holds. Numbers beyond u64 are kept as (approximate) floats.
pub(crate) fn num(s: &str) -> Option<f64> {
    let t = s.strip_prefix('-').unwrap_or(s);
    if t.is_empty()
        || !t.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || t.bytes().filter(|&b| b == b'.').count() > 1
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Kernel clock ticks per second (USER_HZ) for /proc/stat and cpuacct.stat times.
pub(crate) fn user_hz() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as f64 } else { 100.0 }
}

/// `key value` lines (memory.stat, cpu.stat, memory.events) as pairs; lines that are not are skipped.
pub(crate) fn flat_keyed(text: &str) -> impl Iterator<Item = (&str, f64)> {
    text.lines().filter_map(|l| {
        let mut f = l.split_whitespace();
        let k = f.next()?;
        let v = num(f.next()?)?;
        Some((k, v))
    })
}

/// The value of one key in `key value` lines (the first, if given twice).
pub(crate) fn get(text: &str, key: &str) -> Option<f64> {
    flat_keyed(text).find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// Keeps the first of the items with the same key, in order: a kernel file that names a device, CPU or
/// clock source twice (a bug, or a file put in place) must not become duplicate series.
pub(crate) fn first_of_each<T, K: Eq + std::hash::Hash>(items: &mut Vec<T>, key: impl Fn(&T) -> K) {
    let mut seen = std::collections::HashSet::new();
    items.retain(|t| seen.insert(key(t)));
}

/// `some` and `full` totals of one resource's pressure, in seconds. A line the kernel does not give is
/// `None` (`full` is absent for the node's cpu on older kernels).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Psi {
    pub(crate) some: Option<f64>,
    pub(crate) full: Option<f64>,
}

/// Parses a PSI file (`some avg10=.. avg60=.. avg300=.. total=<µs>` / `full ...`), node or cgroup.
pub(crate) fn parse_psi(text: &str) -> Result<Psi, String> {
    let mut psi = Psi::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some(kind) = f.next() else { continue };
        let total = f
            .find_map(|kv| kv.strip_prefix("total="))
            .ok_or_else(|| format!("no total= in line {line:?}"))?;
        let v = num(total).ok_or_else(|| format!("bad total {total:?}"))? / 1e6;
        let slot = match kind {
            "some" => &mut psi.some,
            "full" => &mut psi.full,
            _ => return Err(format!("unexpected line {line:?}")),
        };
        if slot.is_some() {
            return Err(format!("'{kind}' given twice"));
        }
        *slot = Some(v);
    }
    if psi.some.is_none() {
        return Err("no 'some' line".to_string());
    }
    Ok(psi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(num("42"), Some(42.0));
        assert_eq!(num("0.5"), Some(0.5));
        assert_eq!(num("-1"), Some(-1.0));
        assert_eq!(num("18446744073709551616"), Some(18446744073709551616.0));
        assert_eq!(num("inf"), None);
        assert_eq!(num("NaN"), None);
        assert_eq!(num("1e5"), None);
        assert_eq!(num(""), None);
        assert_eq!(num("1.2.3"), None);
    }

    #[test]
    fn keyed_lookups_keep_the_first_of_a_repeated_key() {
        let text = "a 1\nb 2\nbad\nc x\na 9\n";
        assert_eq!(get(text, "a"), Some(1.0));
        assert_eq!(get(text, "c"), None);
    }

    #[test]
    fn first_of_each_keeps_the_first_in_order() {
        let mut v = vec![("b", 1), ("a", 2), ("b", 3), ("c", 4), ("a", 5)];
        first_of_each(&mut v, |x| x.0);
        assert_eq!(v, vec![("b", 1), ("a", 2), ("c", 4)]);
    }

    #[test]
    fn psi_files() {
        let p = parse_psi(
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\n\
             full avg10=0.00 avg60=0.00 avg300=0.00 total=250\n",
        )
        .unwrap();
        assert_eq!(p.some, Some(1.5));
        assert_eq!(p.full, Some(0.00025));
        assert!(parse_psi("some").is_err());
        assert!(parse_psi("some avg10=0.00").is_err());
        assert!(parse_psi("").is_err());
        assert!(parse_psi("some total=abc").is_err());
        assert!(parse_psi("other avg10=1 total=5").is_err());
        assert!(parse_psi("some total=1\nsome total=2").is_err());
    }
}

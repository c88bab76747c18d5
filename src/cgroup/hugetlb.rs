//! Huge pages per cgroup: the page sizes the host has a pool of (sysfs), and each size's usage, peak,
//! refused allocations and limit from the hugetlb controller (v1 `hugetlb.<size>.*`, v2
//! `hugetlb.<size>.{current,max,events}`). Read with open + read + close: these files are few.

use std::path::Path;

use super::files::{Files, limit};
use crate::parse::{get, num};
use crate::sample::container::HugetlbStats;

/// The page sizes with a pool on this host, smallest first: the `hugepages-<n>kB` folders of
/// `<sysfs>/kernel/mm/hugepages` whose persistent, overcommit or surplus page count is above 0. No cgroup
/// can use a size without a pool, so its series would all be 0 on every container: they are left out
/// (cAdvisor writes them all).
pub(crate) fn pool_sizes(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut sizes: Vec<(u64, String)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let kib: u64 = name
                .to_str()?
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            let pages = |file: &str| {
                std::fs::read_to_string(e.path().join(file))
                    .ok()
                    .and_then(|t| t.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let pooled = [
                "nr_hugepages",
                "nr_overcommit_hugepages",
                "surplus_hugepages",
            ]
            .iter()
            .any(|f| pages(f) > 0);
            pooled.then(|| (kib, size_name(kib)))
        })
        .collect();
    sizes.sort();
    sizes.into_iter().map(|(_, name)| name).collect()
}

/// A page size as the kernel writes it in hugetlb file names (and cAdvisor in `pagesize`): whole GB, else
/// whole MB, else KB (`64KB`, `2MB`, `32MB`, `1GB`).
pub(crate) fn size_name(kib: u64) -> String {
    if kib >= 1 << 20 {
        format!("{}GB", kib >> 20)
    } else if kib >= 1 << 10 {
        format!("{}MB", kib >> 10)
    } else {
        format!("{kib}KB")
    }
}

/// One v1 hugetlb cgroup folder: `usage_in_bytes`, `max_usage_in_bytes`, `failcnt`, `limit_in_bytes` per
/// size. A size whose usage file is missing is left out.
pub(crate) fn read_v1(dir: &Path, sizes: &[String], files: &mut Files) -> Vec<HugetlbStats> {
    sizes
        .iter()
        .filter_map(|size| {
            let mut file = |what: &str| files.num_once(dir, &format!("hugetlb.{size}.{what}"));
            Some(HugetlbStats {
                pagesize: size.clone(),
                usage: Some(file("usage_in_bytes")?),
                max_usage: file("max_usage_in_bytes"),
                failcnt: file("failcnt"),
                limit: limit(file("limit_in_bytes")),
            })
        })
        .collect()
}

/// One v2 cgroup: `current`, `max` (`max` is no limit: 0) and the `max` count of `events` per size. v2
/// keeps no peak.
pub(crate) fn read_v2(dir: &Path, sizes: &[String], files: &mut Files) -> Vec<HugetlbStats> {
    sizes
        .iter()
        .filter_map(|size| {
            let usage = files.num_once(dir, &format!("hugetlb.{size}.current"))?;
            let limit_text = files.text_once(dir, &format!("hugetlb.{size}.max"));
            let max = limit_text
                .map(str::trim)
                .and_then(|v| if v == "max" { Some(0.0) } else { num(v) });
            let failcnt = files
                .text_once(dir, &format!("hugetlb.{size}.events"))
                .and_then(|t| get(t, "max"));
            Some(HugetlbStats {
                pagesize: size.clone(),
                usage: Some(usage),
                max_usage: None,
                failcnt,
                limit: limit(max),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_names_as_the_kernel_writes_them() {
        assert_eq!(size_name(64), "64KB");
        assert_eq!(size_name(2048), "2MB");
        assert_eq!(size_name(32768), "32MB");
        assert_eq!(size_name(1 << 20), "1GB");
        assert_eq!(size_name(16 << 20), "16GB");
    }

    #[test]
    fn only_sizes_with_a_pool() {
        let dir = tempfile::tempdir().unwrap();
        for (name, nr, over, surplus) in [
            ("hugepages-2048kB", "0", "0", "0"),
            ("hugepages-1048576kB", "2", "0", "0"),
            ("hugepages-64kB", "0", "0", "3"),
            ("hugepages-32768kB", "0", "5", "0"),
            ("not-a-size", "9", "9", "9"),
        ] {
            let d = dir.path().join(name);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("nr_hugepages"), nr).unwrap();
            std::fs::write(d.join("nr_overcommit_hugepages"), over).unwrap();
            std::fs::write(d.join("surplus_hugepages"), surplus).unwrap();
        }
        assert_eq!(pool_sizes(dir.path()), ["64KB", "32MB", "1GB"]);
        assert!(pool_sizes(&dir.path().join("missing")).is_empty());
    }

    /// v2's file shapes (this host's kernel keeps hugetlb off every v2 subtree, so the v1 reader is the
    /// one tested against the kernel, in tests/hugetlb.rs).
    #[test]
    fn v2_files() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("hugetlb.2MB.current", "4194304\n");
        write("hugetlb.2MB.max", "max\n");
        write("hugetlb.2MB.events", "max 3\n");
        write("hugetlb.1GB.current", "0\n");
        write("hugetlb.1GB.max", "2147483648\n");
        let mut buf = Vec::new();
        let sizes = ["2MB".to_string(), "1GB".to_string(), "64KB".to_string()];
        let got = read_v2(dir.path(), &sizes, &mut Files::plain(&mut buf));
        assert_eq!(got.len(), 2, "no current file, no series: {got:?}");
        assert_eq!(
            (got[0].usage, got[0].limit, got[0].failcnt, got[0].max_usage),
            (Some(4194304.0), Some(0.0), Some(3.0), None)
        );
        assert_eq!((got[1].limit, got[1].failcnt), (Some(2147483648.0), None));
    }
}

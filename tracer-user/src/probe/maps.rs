//! Parsing `/proc/PID/maps`.

/// A file identity: device (major, minor) and inode. Uprobes are per inode, so one attach per
/// identity covers every process and every path (container or host) that maps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    pub major: u32,
    pub minor: u32,
    pub inode: u64,
}

/// One file-backed executable mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub id: FileId,
    /// The path as the process sees it (in its own mount namespace).
    pub path: String,
    /// The file was deleted or replaced since it was mapped.
    pub deleted: bool,
}

/// The executable, file-backed mappings of a maps file (one per file, the first seen).
/// Lines that do not parse are skipped: maps content is not ours to trust.
pub fn executable_files(maps: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in maps.lines() {
        let Some(m) = parse_line(line) else { continue };
        if !out.iter().any(|o| o.id == m.id) {
            out.push(m);
        }
    }
    out
}

fn parse_line(line: &str) -> Option<Mapping> {
    // "start-end perms offset major:minor inode      path"
    let mut rest = line;
    let mut field = || {
        let t = rest.trim_start();
        let end = t.find(' ').unwrap_or(t.len());
        let (f, r) = t.split_at(end);
        rest = r;
        f
    };
    let range = field();
    let perms = field();
    let _offset = field();
    let dev = field();
    let inode = field();
    let path = rest.trim_start();
    if !perms.contains('x') || !path.starts_with('/') {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let (major, minor) = dev.split_once(':')?;
    let inode: u64 = inode.parse().ok()?;
    if inode == 0 {
        return None;
    }
    let (path, deleted) = match path.strip_suffix(" (deleted)") {
        Some(p) => (p, true),
        None => (path, false),
    };
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        id: FileId {
            major: u32::from_str_radix(major, 16).ok()?,
            minor: u32::from_str_radix(minor, 16).ok()?,
            inode,
        },
        path: path.to_string(),
        deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a28000 r--p 00000000 fe:01 1311 /usr/bin/curl
55d0c0a28000-55d0c0a60000 r-xp 00028000 fe:01 1311 /usr/bin/curl
7f0000000000-7f0000021000 rw-p 00000000 00:00 0
7f1000000000-7f1000020000 r--p 00000000 fe:01 2222 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1000020000-7f1000080000 r-xp 00020000 fe:01 2222 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f2000000000-7f2000080000 r-xp 00000000 00:1f 77 /tmp/my dir/libssl.so.3 (deleted)
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]
7ffd00100000-7ffd00102000 r-xp 00000000 00:00 0                          [vdso]
garbage line
7f30-zz r-xp 0 fe:01 5 /x
";

    #[test]
    fn finds_each_executable_file_once() {
        let files = executable_files(MAPS);
        let paths: Vec<&str> = files.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/usr/bin/curl",
                "/usr/lib/x86_64-linux-gnu/libssl.so.3",
                "/tmp/my dir/libssl.so.3"
            ]
        );
        assert_eq!(
            files[1].id,
            FileId {
                major: 0xfe,
                minor: 1,
                inode: 2222
            }
        );
        assert_eq!(files[1].start, 0x7f10_0002_0000);
        assert!(files[2].deleted && !files[1].deleted);
    }
}

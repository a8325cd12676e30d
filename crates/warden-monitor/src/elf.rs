//! The few ELF structures the edge reads (System V ABI: the file header, the program header
//! table, notes), through a positioned read so nothing moves a shared descriptor's offset:
//! the `PT_INTERP` loader a program names and the linker's build-id note. Little-endian files
//! only (x86, arm64, riscv); anything else reads as "none".

/// Reads up to `buf.len()` bytes at `offset`; the number read, or `None` on an error.
pub(crate) trait ReadAt {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Option<usize>;
}

#[cfg(unix)]
impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Option<usize> {
        std::os::unix::fs::FileExt::read_at(self, buf, offset).ok()
    }
}

#[cfg(target_os = "linux")]
impl ReadAt for std::os::fd::BorrowedFd<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Option<usize> {
        nix::sys::uio::pread(self, buf, i64::try_from(offset).ok()?).ok()
    }
}

/// The program header table's offset, entry size, count, and whether the file is 64-bit, from
/// an ELF file header.
pub(crate) fn program_headers(header: &[u8]) -> Option<(u64, u16, u16, bool)> {
    if header.len() < 52 || &header[..4] != b"\x7fELF" || header[5] != 1 {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(header.get(at..at + 2)?.try_into().ok()?));
    match header[4] {
        2 if header.len() >= 64 => {
            let phoff = u64::from_le_bytes(header[32..40].try_into().ok()?);
            Some((phoff, u16_at(54)?, u16_at(56)?, true))
        }
        1 => {
            let phoff = u32::from_le_bytes(header[28..32].try_into().ok()?);
            Some((u64::from(phoff), u16_at(42)?, u16_at(44)?, false))
        }
        _ => None,
    }
}

/// The file offset and size of every segment of type `kind` in a program header table.
pub(crate) fn segments(table: &[u8], entry: usize, wide: bool, kind: u32) -> Vec<(u64, u64)> {
    let mut found = Vec::new();
    if entry < if wide { 56 } else { 32 } {
        return found;
    }
    for header in table.chunks_exact(entry) {
        if u32::from_le_bytes([header[0], header[1], header[2], header[3]]) != kind {
            continue;
        }
        let word = |at: usize, len: usize| -> u64 {
            let mut bytes = [0u8; 8];
            bytes[..len].copy_from_slice(&header[at..at + len]);
            u64::from_le_bytes(bytes)
        };
        found.push(if wide { (word(8, 8), word(32, 8)) } else { (word(4, 4), word(16, 4)) });
    }
    found
}

/// Segment types (System V ABI).
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
pub(crate) const PT_INTERP: u32 = 3;
const PT_NOTE: u32 = 4;

/// The program header table of an ELF file: (table, entry size, 64-bit).
pub(crate) fn program_header_table(file: &impl ReadAt) -> Option<(Vec<u8>, usize, bool)> {
    let mut header = [0u8; 64];
    let read = file.read_at(&mut header, 0)?;
    let (phoff, phentsize, phnum, wide) = program_headers(&header[..read])?;
    let size = usize::from(phentsize) * usize::from(phnum);
    if size == 0 || size > 64 * 1024 {
        return None;
    }
    let mut table = vec![0u8; size];
    (file.read_at(&mut table, phoff)? == size).then_some((table, usize::from(phentsize), wide))
}

/// The GNU build-id (`NT_GNU_BUILD_ID` in a `PT_NOTE` segment), lowercase hex. Costs two or
/// three small reads: the header, the program header table, the note segments (each at most
/// 64 KiB; real ones are a few dozen bytes).
pub(crate) fn build_id(file: &impl ReadAt) -> Option<String> {
    const NT_GNU_BUILD_ID: u32 = 3;
    let (table, entry, wide) = program_header_table(file)?;
    for (offset, size) in segments(&table, entry, wide, PT_NOTE) {
        if size == 0 || size > 64 * 1024 {
            continue;
        }
        let mut notes = vec![0u8; size as usize];
        let read = file.read_at(&mut notes, offset)?;
        let mut notes = &notes[..read];
        // Each note: namesz, descsz, type (4 bytes each), then name and desc, each padded to 4.
        while notes.len() >= 12 {
            let word = |at: usize| u32::from_le_bytes([notes[at], notes[at + 1], notes[at + 2], notes[at + 3]]);
            let (name_size, desc_size, kind) = (word(0) as usize, word(4) as usize, word(8));
            let name_end = 12 + name_size.div_ceil(4) * 4;
            let desc_end = name_end + desc_size.div_ceil(4) * 4;
            if desc_end > notes.len() || name_end < 12 {
                break;
            }
            if kind == NT_GNU_BUILD_ID && &notes[12..12 + name_size] == b"GNU\0" && desc_size > 0 {
                let id = &notes[name_end..name_end + desc_size];
                return Some(id.iter().map(|b| format!("{b:02x}")).collect());
            }
            notes = &notes[desc_end..];
        }
    }
    None
}

/// Whether the file is a dynamic loader by its content: an ELF shared object (`ET_DYN`) that
/// names no interpreter itself and whose `DT_SONAME` is a loader's name (`ld-linux-x86-64.so.2`,
/// `ld-linux-aarch64.so.1`, `ld64.so.2`, …), whatever the file is called. A few small reads:
/// the header, the program header table, the dynamic section and the name.
pub(crate) fn is_loader(file: &impl ReadAt) -> bool {
    soname(file).is_some_and(|name| warden_policy::is_dynamic_loader(&name))
}

/// The `DT_SONAME` of an ELF shared object without `PT_INTERP`.
fn soname(file: &impl ReadAt) -> Option<String> {
    const ET_DYN: u16 = 3;
    const DT_NULL: u64 = 0;
    const DT_STRTAB: u64 = 5;
    const DT_SONAME: u64 = 14;
    let mut header = [0u8; 18];
    if file.read_at(&mut header, 0)? < 18 || u16::from_le_bytes([header[16], header[17]]) != ET_DYN {
        return None;
    }
    let (table, entry, wide) = program_header_table(file)?;
    if !segments(&table, entry, wide, PT_INTERP).is_empty() {
        return None;
    }
    let (offset, size) = *segments(&table, entry, wide, PT_DYNAMIC).first()?;
    if size == 0 || size > 64 * 1024 {
        return None;
    }
    let mut dynamic = vec![0u8; size as usize];
    let read = file.read_at(&mut dynamic, offset)?;
    let word = if wide { 8 } else { 4 };
    let value = |bytes: &[u8]| -> u64 {
        let mut out = [0u8; 8];
        out[..word].copy_from_slice(&bytes[..word]);
        u64::from_le_bytes(out)
    };
    let (mut strtab, mut name) = (None, None);
    for pair in dynamic[..read].chunks_exact(2 * word) {
        match value(pair) {
            DT_NULL => break,
            DT_STRTAB => strtab = Some(value(&pair[word..])),
            DT_SONAME => name = Some(value(&pair[word..])),
            _ => {}
        }
    }
    // DT_STRTAB is an address: the PT_LOAD segment holding it says where it is in the file.
    let address = strtab?.checked_add(name?)?;
    let at = loads(&table, entry, wide)
        .into_iter()
        .find(|&(_, vaddr, filesz)| address >= vaddr && address < vaddr + filesz)
        .map(|(offset, vaddr, _)| offset + (address - vaddr))?;
    let mut text = [0u8; 64];
    let read = file.read_at(&mut text, at)?;
    let end = text[..read].iter().position(|&b| b == 0)?;
    String::from_utf8(text[..end].to_vec()).ok()
}

/// Every `PT_LOAD` segment: (file offset, virtual address, size in the file).
fn loads(table: &[u8], entry: usize, wide: bool) -> Vec<(u64, u64, u64)> {
    let mut found = Vec::new();
    for header in table.chunks_exact(entry) {
        if header.len() < if wide { 56 } else { 32 }
            || u32::from_le_bytes([header[0], header[1], header[2], header[3]]) != PT_LOAD
        {
            continue;
        }
        let word = |at: usize, len: usize| -> u64 {
            let mut bytes = [0u8; 8];
            bytes[..len].copy_from_slice(&header[at..at + len]);
            u64::from_le_bytes(bytes)
        };
        found.push(if wide { (word(8, 8), word(16, 8), word(32, 8)) } else { (word(4, 4), word(8, 4), word(16, 4)) });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loader_is_known_by_its_soname_whatever_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let renamed = dir.path().join("notes");
        std::fs::copy("/lib64/ld-linux-x86-64.so.2", &renamed).unwrap();
        assert!(is_loader(&std::fs::File::open(&renamed).unwrap()), "a renamed copy of the loader");
        // Programs (with PT_INTERP), other shared libraries and scripts are not.
        for other in ["/bin/true", "/lib/x86_64-linux-gnu/libc.so.6", "/etc/hostname"] {
            assert!(!is_loader(&std::fs::File::open(other).unwrap()), "{other}");
        }
    }

    #[test]
    fn the_build_id_is_the_one_the_toolchain_reports() {
        // `readelf -n` (binutils) prints the same note; /bin/true is built with one on Debian.
        let file = std::fs::File::open("/bin/true").unwrap();
        let id = build_id(&file).expect("/bin/true has a build-id");
        let readelf = std::process::Command::new("readelf").args(["-n", "/bin/true"]).output().unwrap();
        let text = String::from_utf8_lossy(&readelf.stdout);
        assert!(text.contains(&format!("Build ID: {id}")), "{id} not in:\n{text}");
        // Scripts, short files and a build without the note have none.
        let dir = tempfile::tempdir().unwrap();
        let none = dir.path().join("none");
        let status = std::process::Command::new("cc")
            .args(["-x", "c", "-o"])
            .arg(&none)
            .args(["-Wl,--build-id=none", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(b"int main(void){return 0;}\n")?;
                child.wait()
            })
            .unwrap();
        assert!(status.success());
        assert_eq!(build_id(&std::fs::File::open(&none).unwrap()), None);
        for (name, bytes) in [("script", &b"#!/bin/sh\necho\n"[..]), ("short", &b"\x7fELF\x02\x01"[..])] {
            std::fs::write(dir.path().join(name), bytes).unwrap();
            assert_eq!(build_id(&std::fs::File::open(dir.path().join(name)).unwrap()), None, "{name}");
        }
    }
}

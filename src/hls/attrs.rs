//! A quote-aware scanner for HLS attribute lists (`NAME=VALUE,NAME="v,x"`,
//! RFC 8216 §4.2) that reports byte spans, so that the rewriter can edit one
//! attribute and copy every other byte as it was.
//!
//! Owns only the syntax: where each attribute, its name and its value are.
//! It is lenient on purpose (blanks around names, unquoted URIs, an
//! unterminated quote running to the end of the line) and never fails or
//! panics: any byte string is a list of zero or more attributes.

/// One attribute of a list, as offsets into the scanned line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Attr {
    /// The whole attribute: from just after the previous `,` (or the start
    /// of the list) to just before the next `,` (or the end of the line).
    pub span: (usize, usize),
    /// The name, blanks trimmed.
    pub name: (usize, usize),
    /// The value without its quotes (if it had any), blanks trimmed.
    pub value: (usize, usize),
}

impl Attr {
    /// The attribute's name.
    pub fn name<'a>(&self, line: &'a [u8]) -> &'a [u8] {
        line.get(self.name.0..self.name.1).unwrap_or_default()
    }

    /// The attribute's value, without quotes.
    pub fn value<'a>(&self, line: &'a [u8]) -> &'a [u8] {
        line.get(self.value.0..self.value.1).unwrap_or_default()
    }
}

/// The attributes of `line[from..]`, in order.
pub(crate) fn scan(line: &[u8], from: usize) -> Attrs<'_> {
    Attrs { line, pos: from }
}

/// Iterator over the attributes of a list; see [`scan`].
pub(crate) struct Attrs<'a> {
    line: &'a [u8],
    pos: usize,
}

impl Iterator for Attrs<'_> {
    type Item = Attr;

    fn next(&mut self) -> Option<Attr> {
        let line = self.line;
        let start = self.pos;
        if start >= line.len() {
            return None;
        }
        let mut i = start;
        // The name runs to `=` or `,`.
        while let Some(&b) = line.get(i) {
            if b == b'=' || b == b',' {
                break;
            }
            i += 1;
        }
        let name = trimmed(line, start, i);
        let (value, end) = if line.get(i) == Some(&b'=') {
            value_at(line, i + 1)
        } else {
            ((i, i), i)
        };
        // Past the `,` that ended this attribute; a trailing `,` yields no
        // empty attribute after it.
        self.pos = end + 1;
        Some(Attr {
            span: (start, end),
            name,
            value,
        })
    }
}

/// Reads a value starting at `from`: returns its span (quotes excluded) and
/// where the attribute ends (the next `,` outside quotes, or the line end).
fn value_at(line: &[u8], from: usize) -> ((usize, usize), usize) {
    let (first, _) = trimmed(line, from, line.len());
    if line.get(first) == Some(&b'"') {
        let open = first + 1;
        let close = (open..line.len())
            .find(|&i| line.get(i) == Some(&b'"'))
            .unwrap_or(line.len());
        let end = (close..line.len())
            .find(|&i| line.get(i) == Some(&b','))
            .unwrap_or(line.len());
        ((open, close), end)
    } else {
        let end = (from..line.len())
            .find(|&i| line.get(i) == Some(&b','))
            .unwrap_or(line.len());
        (trimmed(line, from, end), end)
    }
}

/// `(start, end)` narrowed to exclude blanks at either side.
fn trimmed(line: &[u8], start: usize, end: usize) -> (usize, usize) {
    let blank = |i: usize| matches!(line.get(i), Some(b' ' | b'\t'));
    let (mut s, mut e) = (start, end);
    while s < e && blank(s) {
        s += 1;
    }
    while e > s && blank(e - 1) {
        e -= 1;
    }
    (s, e)
}

/// The first attribute called `name` (exact, case-sensitive as the RFC says).
pub(crate) fn find(line: &[u8], from: usize, name: &[u8]) -> Option<Attr> {
    scan(line, from).find(|a| a.name(line) == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(line: &str) -> Vec<(&str, &str, &str)> {
        scan(line.as_bytes(), 0)
            .map(|a| {
                (
                    &line[a.span.0..a.span.1],
                    &line[a.name.0..a.name.1],
                    &line[a.value.0..a.value.1],
                )
            })
            .collect()
    }

    #[test]
    fn scan_table() {
        assert_eq!(parts(""), vec![]);
        assert_eq!(parts("A=1"), vec![("A=1", "A", "1")]);
        assert_eq!(
            parts(r#"URI="a,b.ts",BYTERANGE="1@2""#),
            vec![
                (r#"URI="a,b.ts""#, "URI", "a,b.ts"),
                (r#"BYTERANGE="1@2""#, "BYTERANGE", "1@2")
            ]
        );
        assert_eq!(
            parts(r#" A = "x" ,B=y ,C"#),
            vec![
                (r#" A = "x" "#, "A", "x"),
                ("B=y ", "B", "y"),
                ("C", "C", "")
            ]
        );
        assert_eq!(parts(r#"URI="open"#), vec![(r#"URI="open"#, "URI", "open")]);
        assert_eq!(parts("A=1,"), vec![("A=1", "A", "1")]);
        assert_eq!(parts(",A=1"), vec![("", "", ""), ("A=1", "A", "1")]);
        assert_eq!(parts("URI=seg.ts"), vec![("URI=seg.ts", "URI", "seg.ts")]);
        assert_eq!(parts(r#"X="""#), vec![(r#"X="""#, "X", "")]);
    }

    #[test]
    fn spans_cover_the_list_between_commas() {
        let line = r#"#EXT-X-PART:DURATION=1.0,URI="p,1.mp4",INDEPENDENT=YES"#;
        let attrs: Vec<Attr> = scan(line.as_bytes(), 12).collect();
        assert_eq!(attrs.len(), 3);
        let rebuilt: Vec<&str> = attrs.iter().map(|a| &line[a.span.0..a.span.1]).collect();
        assert_eq!(format!("#EXT-X-PART:{}", rebuilt.join(",")), line);
        let uri = find(line.as_bytes(), 12, b"URI").map(|a| a.value(line.as_bytes()));
        assert_eq!(uri, Some(&b"p,1.mp4"[..]));
        assert_eq!(find(line.as_bytes(), 12, b"uri"), None);
    }
}

//! Columns that line up: long names and ids are shortened to fit a column (`--output json`
//! keeps them whole).

/// The part of an id a person reads: for an ARN, the last segment of its resource
/// (`arn:aws:ecs:…:service/l5d-demo/l5d-demo-linkerd` → `l5d-demo-linkerd`); anything else
/// as it is.
pub fn short_id(id: &str) -> &str {
    if !id.starts_with("arn:") {
        return id;
    }
    // arn:partition:service:region:account:resource
    let resource = id.splitn(6, ':').nth(5).unwrap_or(id);
    resource.rsplit('/').next().unwrap_or(resource)
}

/// `text` in at most `width` characters: its start and its end around one `…`.
pub fn fit(text: &str, width: usize) -> String {
    let count = text.chars().count();
    if count <= width || width < 3 {
        return text.to_owned();
    }
    let tail = (width - 1) / 2;
    let head = width - 1 - tail;
    let start: String = text.chars().take(head).collect();
    let end: String = text.chars().skip(count - tail).collect();
    format!("{start}…{end}")
}

/// The rows as lines, each column as wide as its widest cell but at most `caps[i]` (cells
/// beyond are shortened with [`fit`]); the last column is neither cut nor padded.
pub fn lines(rows: &[Vec<String>], caps: &[usize]) -> Vec<String> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let cap = |i: usize| caps.get(i).copied().unwrap_or(usize::MAX);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count().min(cap(i)))
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|row| {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let cell = fit(cell, cap(i));
                    let pad = widths[i].saturating_sub(cell.chars().count());
                    line.push_str(&cell);
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            line.trim_end().to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_read_as_the_last_segment_of_their_resource() {
        assert_eq!(
            short_id("arn:aws:ecs:us-east-1:123456789012:service/l5d-demo/l5d-demo-linkerd"),
            "l5d-demo-linkerd"
        );
        assert_eq!(
            short_id("arn:aws:ecs:us-east-1:1:task-definition/l5d-demo-linkerd:3"),
            "l5d-demo-linkerd:3"
        );
        assert_eq!(
            short_id("arn:aws:iam::1:role/ecsInstanceRole"),
            "ecsInstanceRole"
        );
        assert_eq!(short_id("sg-0123"), "sg-0123");
    }

    #[test]
    fn long_cells_keep_their_start_and_end() {
        assert_eq!(fit("abcdefghij", 7), "abc…hij");
        assert_eq!(fit("abcdefghij", 10), "abcdefghij");
        assert_eq!(fit("abcdefghij", 6).chars().count(), 6);
    }

    #[test]
    fn columns_line_up_within_their_caps() {
        let rows = vec![
            vec!["a".into(), "short".into(), "x".into()],
            vec![
                "kind-long".into(),
                "a-name-far-too-long-for-it".into(),
                "y".into(),
            ],
        ];
        let out = lines(&rows, &[20, 10]);
        assert_eq!(out[0], "a          short       x");
        assert_eq!(out[1], "kind-long  a-nam…r-it  y");
        let column = |line: &str, c: char| line.chars().position(|x| x == c);
        assert_eq!(column(&out[0], 'x'), column(&out[1], 'y'));
    }
}

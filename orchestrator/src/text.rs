//! Text from outside (an alert, a person) made safe to store and show,
//! never a reason to refuse an alert: control characters replaced (NUL
//! cannot be stored in a PostgreSQL text column at all), titles trimmed and
//! cut with an ellipsis.

/// `s` with every control character replaced: tab, line feed and carriage
/// return by a space, any other (NUL among them) by U+FFFD. Unchanged (no
/// allocation) when there is none.
pub fn storable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| match c {
                '\t' | '\n' | '\r' => ' ',
                c if c.is_control() => '\u{FFFD}',
                c => c,
            })
            .collect(),
    )
}

/// A one-line title of at most `max` characters: control characters become
/// spaces, runs of white space one space, trimmed; longer ones are cut and
/// end in `…`. Empty input gives `fallback` (cut the same way).
pub fn title(s: &str, max: usize, fallback: &str) -> String {
    let mut out = String::with_capacity(s.len().min(max * 4));
    let mut space = false;
    for c in s.chars() {
        if c.is_control() || c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push(c);
    }
    if out.is_empty() {
        // The fallback fits too, so a title of a title is the same title.
        return if fallback.is_empty() {
            String::new()
        } else {
            title(fallback, max, "")
        };
    }
    if out.chars().count() > max {
        let mut cut: String = out.chars().take(max.saturating_sub(1)).collect();
        cut.truncate(cut.trim_end().len());
        cut.push('…');
        return cut;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn control_characters_are_replaced() {
        assert_eq!(storable("ws-042"), "ws-042");
        assert_eq!(storable("ws\u{0}42"), "ws\u{FFFD}42");
        assert_eq!(storable("a\tb\nc\rd\u{1b}[31m"), "a b c d\u{FFFD}[31m");
    }

    #[test]
    fn titles_are_one_line_and_cut() {
        assert_eq!(
            title(
                "sshd[811]: Failed password\nfor root\tfrom 10.0.0.1",
                300,
                "Alert"
            ),
            "sshd[811]: Failed password for root from 10.0.0.1"
        );
        assert_eq!(title("  \n\t ", 300, "Alert"), "Alert");
        assert_eq!(title("\u{0}x\u{0}", 300, "Alert"), "x");
        // Found by the property below: the fallback fits as well.
        assert_eq!(title("", 2, "Alert"), "A…");
        assert_eq!(title("A…", 2, "Alert"), "A…");
        let long = "é".repeat(400);
        let t = title(&long, 300, "Alert");
        assert_eq!(t.chars().count(), 300);
        assert!(t.ends_with('…'));
    }

    proptest! {
        #[test]
        fn titles_fit_and_are_printable(s in any::<String>(), max in 2usize..400) {
            let t = title(&s, max, "Alert");
            prop_assert!(!t.is_empty());
            prop_assert!(t.chars().count() <= max);
            prop_assert!(!t.chars().any(char::is_control));
            prop_assert_eq!(title(&t, max, "Alert"), t.clone(), "idempotent");
        }

        #[test]
        fn storable_has_no_control_characters(s in any::<String>()) {
            let t = storable(&s);
            prop_assert!(!t.chars().any(char::is_control));
            prop_assert_eq!(t.chars().count(), s.chars().count());
        }
    }
}

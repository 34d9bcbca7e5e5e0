//! A validation problem: where it is, what is wrong, and how to fix it.

use std::fmt;

/// One thing wrong with a resource, addressed by its field path (`spec.sinks[1].name`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    /// Dotted field path from the resource root, with `[i]` for list items.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl Problem {
    pub fn new(
        path: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
            hint: hint.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if !self.hint.is_empty() {
            write!(f, " (fix: {})", self.hint)?;
        }
        Ok(())
    }
}

/// Renders problems one per line, for condition messages and error output.
pub fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Builds field paths as a walk descends into an object.
#[derive(Clone, Debug, Default)]
pub(crate) struct FieldPath(Vec<String>);

impl FieldPath {
    #[cfg(test)]
    pub(crate) fn root(first: &str) -> Self {
        Self(vec![first.to_owned()])
    }

    pub(crate) fn field(&self, name: &str) -> Self {
        let mut next = self.clone();
        next.0.push(name.to_owned());
        next
    }

    pub(crate) fn index(&self, i: usize) -> Self {
        let mut next = self.clone();
        match next.0.last_mut() {
            Some(last) => last.push_str(&format!("[{i}]")),
            None => next.0.push(format!("[{i}]")),
        }
        next
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<root>");
        }
        f.write_str(&self.0.join("."))
    }
}

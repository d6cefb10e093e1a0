//! The path parameters of a matched route. A module of its own so that the dialects, which
//! read them, need nothing from the route table, which names their handlers.

/// Path parameters of a matched route, in the order of the pattern.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Params(Vec<(&'static str, String)>);

impl Params {
    /// The parameters a pattern's names matched, in the pattern's order.
    pub(crate) fn new(pairs: Vec<(&'static str, String)>) -> Self {
        Self(pairs)
    }

    /// A parameter's value (percent-decoded); empty when the pattern has no such name.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

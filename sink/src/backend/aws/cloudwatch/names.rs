//! CloudWatch's naming rules: which metric names, dimension names and dimension values it
//! accepts. The publisher skips points that break them; `cloudwatch-alarms` refuses rules
//! that do.

use super::HOST_DIMENSION;

/// Longest metric name CloudWatch accepts, characters (the sink core holds alarm rules to it).
pub use outpost_sink_core::names::MAX_METRIC_NAME_LEN;
/// Longest dimension name CloudWatch accepts, characters.
pub const MAX_DIMENSION_NAME_LEN: usize = 255;
/// Longest dimension value CloudWatch accepts, characters.
pub const MAX_DIMENSION_VALUE_LEN: usize = 1024;
/// Printable ASCII with at least one non-space character (CloudWatch's rule for dimensions).
fn printable_ascii(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii() && !b.is_ascii_control())
        && s.bytes().any(|b| !b.is_ascii_whitespace())
}

pub(crate) fn metric_name_accepted(name: &str) -> bool {
    (1..=MAX_METRIC_NAME_LEN).contains(&name.chars().count())
}

/// Whether CloudWatch takes `name` as a dimension name: 1 to [`MAX_DIMENSION_NAME_LEN`]
/// printable ASCII characters.
pub fn dimension_name_valid(name: &str) -> bool {
    (1..=MAX_DIMENSION_NAME_LEN).contains(&name.len()) && printable_ascii(name)
}

/// A point's own dimension name the publisher accepts: valid, not starting with `:`, and not
/// [`HOST_DIMENSION`] (the sink's own).
pub(crate) fn dimension_name_accepted(name: &str) -> bool {
    dimension_name_valid(name) && !name.starts_with(':') && name != HOST_DIMENSION
}

/// Whether CloudWatch takes `value` as a dimension value: 1 to [`MAX_DIMENSION_VALUE_LEN`]
/// bytes of printable ASCII.
pub fn dimension_value_accepted(value: &str) -> bool {
    (1..=MAX_DIMENSION_VALUE_LEN).contains(&value.len()) && printable_ascii(value)
}

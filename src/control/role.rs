//! What part of the stream a speaker plays.

use core::fmt;
use core::str::FromStr;

/// What part of the stream a speaker plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Every channel of the stream (a stand-alone speaker).
    Full,
    /// The left channel: one half of a stereo pair.
    Left,
    /// The right channel: the other half of a stereo pair.
    Right,
    /// The low-frequency part, summed to one channel (a subwoofer).
    Sub,
    /// All channels mixed down to one.
    Mono,
}

impl Role {
    /// Every role, in wire-code order.
    pub const ALL: [Role; 5] = [Role::Full, Role::Left, Role::Right, Role::Sub, Role::Mono];

    /// The role's lower-case name, as in configuration files and logs ("full", "left", ...).
    pub fn name(self) -> &'static str {
        match self {
            Role::Full => "full",
            Role::Left => "left",
            Role::Right => "right",
            Role::Sub => "sub",
            Role::Mono => "mono",
        }
    }

    /// Whether its output carries the full band (a subwoofer's does not): a skew meter
    /// compares only those.
    pub fn full_range(self) -> bool {
        self != Role::Sub
    }

    /// The role's code on the wire.
    pub(crate) fn code(self) -> u8 {
        match self {
            Role::Full => 0,
            Role::Left => 1,
            Role::Right => 2,
            Role::Sub => 3,
            Role::Mono => 4,
        }
    }

    /// The role with wire code `code`, if there is one.
    pub(crate) fn from_code(code: u8) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.code() == code)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that names no [`Role`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {got:?} (expected full, left, right, sub or mono)")]
pub struct UnknownRole {
    /// The string that came.
    pub got: String,
}

impl FromStr for Role {
    type Err = UnknownRole;

    /// Parses a role name exactly as [`Role::name`] writes it (lower case).
    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|role| role.name() == s)
            .ok_or_else(|| UnknownRole { got: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_display_the_same() {
        for role in Role::ALL {
            assert_eq!(role.name().parse::<Role>(), Ok(role));
            assert_eq!(role.to_string(), role.name());
        }
        assert_eq!(Role::Left.name(), "left");
    }

    #[test]
    fn unknown_name_is_an_error_with_the_string() {
        assert_eq!(
            "centre".parse::<Role>(),
            Err(UnknownRole {
                got: "centre".into()
            })
        );
        // Names are case-sensitive: configuration writes them lower case.
        assert!("Left".parse::<Role>().is_err());
    }

    #[test]
    fn wire_codes_are_distinct_and_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::from_code(role.code()), Some(role));
        }
        assert_eq!(Role::from_code(5), None);
        assert_eq!(Role::from_code(255), None);
    }
}

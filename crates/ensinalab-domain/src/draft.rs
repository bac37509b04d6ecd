//! What a teacher submits, validated before anything is stored or dispatched.

/// Limits on a briefing. Generous for teachers, tight enough that a body cannot be abused.
const TITLE_MAX: usize = 200;
const DESCRIPTION_MAX: usize = 5_000;
const DURATION_MAX_MINUTES: u32 = 180;

/// Why a briefing draft was refused; each names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DraftError {
    /// Title empty or only whitespace.
    #[error("title must not be empty")]
    EmptyTitle,
    /// Title longer than the limit (in characters).
    #[error("title must be at most {max} characters")]
    TitleTooLong {
        /// The limit.
        max: usize,
    },
    /// Description longer than the limit (in characters).
    #[error("description must be at most {max} characters")]
    DescriptionTooLong {
        /// The limit.
        max: usize,
    },
    /// Duration outside `1..=max` minutes.
    #[error("duration_minutes must be between 1 and {max}")]
    DurationOutOfRange {
        /// The limit.
        max: u32,
    },
    /// A control character (NUL included) in the title.
    #[error("title must not contain control characters")]
    ControlInTitle,
    /// A control character other than newline and tab in the description.
    #[error("description must not contain control characters other than newline and tab")]
    ControlInDescription,
}

/// A valid briefing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BriefingDraft {
    title: String,
    description: String,
    duration_minutes: u32,
}

impl BriefingDraft {
    /// Validates a draft; the title is trimmed. Control characters are refused (a NUL cannot
    /// even be stored in PostgreSQL's text, and the others forge lines in logs and screens),
    /// except newline and tab in a description, which is prose.
    ///
    /// # Errors
    /// A [`DraftError`] naming the first field that breaks its rule.
    pub fn new(title: &str, description: &str, duration_minutes: i64) -> Result<Self, DraftError> {
        let title = title.trim();
        if title.is_empty() {
            return Err(DraftError::EmptyTitle);
        }
        if title.chars().any(char::is_control) {
            return Err(DraftError::ControlInTitle);
        }
        if description
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(DraftError::ControlInDescription);
        }
        if title.chars().count() > TITLE_MAX {
            return Err(DraftError::TitleTooLong { max: TITLE_MAX });
        }
        if description.chars().count() > DESCRIPTION_MAX {
            return Err(DraftError::DescriptionTooLong {
                max: DESCRIPTION_MAX,
            });
        }
        let duration_minutes = u32::try_from(duration_minutes)
            .ok()
            .filter(|d| (1..=DURATION_MAX_MINUTES).contains(d))
            .ok_or(DraftError::DurationOutOfRange {
                max: DURATION_MAX_MINUTES,
            })?;
        Ok(Self {
            title: title.to_owned(),
            description: description.to_owned(),
            duration_minutes,
        })
    }

    /// The trimmed title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// The description, as given.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Planned video length.
    pub fn duration_minutes(&self) -> u32 {
        self.duration_minutes
    }
}

/// One option produced by `ensinalab.generate_options`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct GeneratedOption {
    /// Shown to the teacher.
    pub title: String,
    /// Shown to the teacher.
    pub description: String,
    /// Which generator will render the video (e.g. `"simple"`).
    pub generator_type: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_draft_keeps_its_fields_and_trims_the_title() {
        let d = BriefingDraft::new("  Teste de Cancelamento ", "...", 10).unwrap();
        assert_eq!(d.title(), "Teste de Cancelamento");
        assert_eq!(d.description(), "...");
        assert_eq!(d.duration_minutes(), 10);
    }

    #[test]
    fn drafts_breaking_a_rule_are_refused_with_the_field_named() {
        let long_title = "a".repeat(201);
        let long_description = "é".repeat(5_001);
        let table: [(&str, &str, i64, DraftError); 7] = [
            ("", "d", 10, DraftError::EmptyTitle),
            ("   ", "d", 10, DraftError::EmptyTitle),
            (&long_title, "d", 10, DraftError::TitleTooLong { max: 200 }),
            (
                "t",
                &long_description,
                10,
                DraftError::DescriptionTooLong { max: 5_000 },
            ),
            ("t", "d", 0, DraftError::DurationOutOfRange { max: 180 }),
            ("t", "d", -5, DraftError::DurationOutOfRange { max: 180 }),
            (
                "t",
                "d",
                1_000_000_000_000,
                DraftError::DurationOutOfRange { max: 180 },
            ),
        ];
        for (title, description, duration, err) in table {
            assert_eq!(BriefingDraft::new(title, description, duration), Err(err));
        }
    }

    #[test]
    fn control_characters_are_refused_but_newlines_and_tabs_in_a_description() {
        let table = [
            ("Aula\u{0}zero", "", Some(DraftError::ControlInTitle)),
            ("Aula\nzero", "", Some(DraftError::ControlInTitle)),
            ("Aula\u{1b}[31m", "", Some(DraftError::ControlInTitle)),
            ("Au\u{85}la", "", Some(DraftError::ControlInTitle)),
            ("Aula", "a\u{0}b", Some(DraftError::ControlInDescription)),
            ("Aula", "a\rb", Some(DraftError::ControlInDescription)),
            ("Aula", "a\u{7f}", Some(DraftError::ControlInDescription)),
            ("Aula", "linha 1\nlinha 2\tcoluna", None),
            ("Aula — ação ✓", "é", None),
        ];
        for (title, description, err) in table {
            assert_eq!(
                BriefingDraft::new(title, description, 10).err(),
                err,
                "{title:?} {description:?}"
            );
        }
    }

    #[test]
    fn limits_are_inclusive_and_counted_in_characters() {
        assert!(BriefingDraft::new(&"ã".repeat(200), &"é".repeat(5_000), 180).is_ok());
        assert!(BriefingDraft::new("t", "", 1).is_ok());
    }
}

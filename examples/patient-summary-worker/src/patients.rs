//! Deterministic fake patient records, keyed by id, and the summary built from one.
//!
//! Nothing here is real data: every field is derived from the patient id with a tiny
//! pseudo-random generator, so the same id always yields the same summary.

use serde::Serialize;

/// Patient ids `1..=PATIENT_COUNT` exist; every other id is unknown.
pub const PATIENT_COUNT: u64 = 12;

const NAMES: [&str; PATIENT_COUNT as usize] = [
    "Ada Okafor",
    "Bruno Lindqvist",
    "Chiara Rossi",
    "Dmitri Volkov",
    "Esther Mensah",
    "Farid Haddad",
    "Grace Nakamura",
    "Hugo Lefèvre",
    "Ingrid Solberg",
    "Jamal Carter",
    "Keiko Tanaka",
    "Lucía Fernández",
];

/// A condition and the medication usually prescribed for it.
const CONDITIONS: [(&str, &str, &str); 10] = [
    ("Type 2 diabetes", "Metformin", "500 mg twice daily"),
    ("Hypertension", "Lisinopril", "10 mg once daily"),
    ("Asthma", "Salbutamol inhaler", "100 µg as needed"),
    ("Hypothyroidism", "Levothyroxine", "75 µg once daily"),
    ("Atrial fibrillation", "Apixaban", "5 mg twice daily"),
    ("Hyperlipidaemia", "Atorvastatin", "20 mg at night"),
    (
        "Chronic kidney disease, stage 2",
        "Dapagliflozin",
        "10 mg once daily",
    ),
    (
        "Osteoarthritis",
        "Paracetamol",
        "1 g up to four times daily",
    ),
    (
        "Major depressive disorder",
        "Sertraline",
        "50 mg once daily",
    ),
    ("GERD", "Omeprazole", "20 mg once daily"),
];

/// One medication on the patient's list.
#[derive(Debug, Clone, Serialize)]
pub struct Medication {
    pub name: &'static str,
    pub dose: &'static str,
}

/// The most recent set of vital signs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Vitals {
    pub heart_rate_bpm: u32,
    pub blood_pressure: String,
    pub temperature_c: f64,
    pub spo2_pct: u32,
    pub respiratory_rate: u32,
    pub recorded_days_ago: u32,
}

/// The summary a worker sends back (serialised as camelCase JSON).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub patient_id: u64,
    pub name: &'static str,
    pub age: u32,
    pub sex: &'static str,
    pub mrn: String,
    pub conditions: Vec<&'static str>,
    pub medications: Vec<Medication>,
    pub latest_vitals: Vitals,
    pub flags: Vec<String>,
    pub narrative: String,
}

/// A tiny deterministic generator (SplitMix64), so summaries are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        let span = u64::from(hi - lo + 1);
        lo + u32::try_from(self.next() % span).unwrap_or(0)
    }
}

/// Builds the summary of patient `id`, or `None` if no such patient exists.
pub fn summary(id: u64) -> Option<Summary> {
    if !(1..=PATIENT_COUNT).contains(&id) {
        return None;
    }
    let name = NAMES[usize::try_from(id - 1).ok()?];
    let mut rng = Rng(id.wrapping_mul(7919));
    let age = rng.range(24, 89);
    let sex = if id.is_multiple_of(2) {
        "male"
    } else {
        "female"
    };

    let mut picked: Vec<usize> = Vec::new();
    let count = rng.range(1, 3);
    while picked.len() < count as usize {
        let i = rng.range(0, CONDITIONS.len() as u32 - 1) as usize;
        if !picked.contains(&i) {
            picked.push(i);
        }
    }
    picked.sort_unstable();
    let conditions: Vec<&'static str> = picked.iter().map(|&i| CONDITIONS[i].0).collect();
    let medications = picked
        .iter()
        .map(|&i| Medication {
            name: CONDITIONS[i].1,
            dose: CONDITIONS[i].2,
        })
        .collect();

    let systolic = rng.range(105, 165);
    let diastolic = rng.range(65, 98);
    let vitals = Vitals {
        heart_rate_bpm: rng.range(54, 104),
        blood_pressure: format!("{systolic}/{diastolic}"),
        temperature_c: f64::from(rng.range(361, 381)) / 10.0,
        spo2_pct: rng.range(91, 99),
        respiratory_rate: rng.range(12, 22),
        recorded_days_ago: rng.range(0, 20),
    };

    let mut flags = Vec::new();
    if systolic >= 140 || diastolic >= 90 {
        flags.push(format!(
            "Blood pressure above target ({systolic}/{diastolic})"
        ));
    }
    if vitals.spo2_pct < 94 {
        flags.push(format!("Low oxygen saturation ({}%)", vitals.spo2_pct));
    }
    if vitals.temperature_c >= 37.8 {
        flags.push(format!(
            "Raised temperature ({:.1} °C)",
            vitals.temperature_c
        ));
    }
    if vitals.recorded_days_ago > 14 {
        flags.push("Vitals older than two weeks".to_owned());
    }

    let narrative = format!(
        "{name} is a {age}-year-old {sex} with {}. Currently on {} medication{}. {}",
        join_conditions(&conditions),
        picked.len(),
        if picked.len() == 1 { "" } else { "s" },
        if flags.is_empty() {
            "Latest vitals are within target ranges.".to_owned()
        } else {
            format!("Needs attention: {}.", flags.join("; ").to_lowercase())
        }
    );

    Some(Summary {
        patient_id: id,
        name,
        age,
        sex,
        mrn: format!("MRN-{:06}", 100_000 + id * 7_331),
        conditions,
        medications,
        latest_vitals: vitals,
        flags,
        narrative,
    })
}

fn join_conditions(items: &[&str]) -> String {
    let lower: Vec<String> = items
        .iter()
        .map(|c| {
            // Keep acronyms (GERD) as written; lower-case ordinary words.
            if c.chars().all(|ch| ch.is_ascii_uppercase()) {
                (*c).to_owned()
            } else {
                c.to_lowercase()
            }
        })
        .collect();
    match lower.as_slice() {
        [] => "no recorded conditions".to_owned(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_patient_has_a_complete_summary() {
        for id in 1..=PATIENT_COUNT {
            let s = summary(id).unwrap();
            assert_eq!(s.patient_id, id);
            assert!(!s.conditions.is_empty());
            assert_eq!(s.conditions.len(), s.medications.len());
            assert!((36.0..=38.2).contains(&s.latest_vitals.temperature_c));
            assert!(s.narrative.starts_with(s.name));
        }
    }

    #[test]
    fn summaries_are_deterministic() {
        let a = serde_json::to_string(&summary(7)).unwrap();
        let b = serde_json::to_string(&summary(7)).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn unknown_ids_have_no_summary() {
        assert!(summary(0).is_none());
        assert!(summary(13).is_none());
        assert!(summary(99).is_none());
    }
}

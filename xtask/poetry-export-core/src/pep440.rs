//! PEP 440 versions and Poetry's version constraints (`^1.2`, `~1.2`, `>=1,<2 || 3.*`), with the same
//! intersection, union, difference and printing as poetry-core, because exported markers depend on them.
//!
//! Pure: no I/O. `Version` orders like `packaging`; `Constraint` is poetry-core's `VersionConstraint`
//! family (`EmptyConstraint`, `Version`, `VersionRange`, `VersionUnion`) as one enum.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use crate::memo::{memo, FastMap, Memo};

// ---------------------------------------------------------------------------------------------------------
// Versions
// ---------------------------------------------------------------------------------------------------------

/// A pre-release phase (`a`, `b`, `rc`), normalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Phase {
    Alpha,
    Beta,
    Rc,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Alpha => "a",
            Phase::Beta => "b",
            Phase::Rc => "rc",
        }
    }
}

/// A PEP 440 version as poetry-core models it: the release keeps its precision (`3.8` is not `3.8.0` when
/// printed, but they compare equal).
/// Cheap to clone: versions are shared by the many constraints that mention them.
#[derive(Clone)]
pub struct Version(std::rc::Rc<VersionData>);

pub struct VersionData {
    epoch: u64,
    release: Vec<u64>,
    pre: Option<(Phase, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
    local: Option<Vec<String>>,
    /// The normalized text, made when first asked for (most versions the algebra makes are never printed).
    text: std::cell::OnceCell<String>,
}

impl std::ops::Deref for Version {
    type Target = VersionData;
    fn deref(&self) -> &VersionData {
        &self.0
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({})", self.text())
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// One slot of the comparison key: below everything, a tagged number, or above everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    NegInf,
    Tag(u8, u64),
    Inf,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum LocalPart<'a> {
    Alpha(&'a str),
    Num(u64),
}

impl Version {
    fn new(
        epoch: u64,
        release: Vec<u64>,
        pre: Option<(Phase, u64)>,
        post: Option<u64>,
        dev: Option<u64>,
        local: Option<Vec<String>>,
    ) -> Version {
        Version(std::rc::Rc::new(VersionData { epoch, release, pre, post, dev, local, text: Default::default() }))
    }

    /// Parses a version the way poetry-core does (`packaging`'s pattern, case-insensitive, optional `v`).
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim();
        let lower;
        let s = if s.as_bytes().iter().any(u8::is_ascii_uppercase) {
            lower = s.to_ascii_lowercase();
            lower.as_str()
        } else {
            s
        };
        let (version, end) = parse_version_prefix(s)?;
        (end == s.len()).then_some(version)
    }

    pub fn text(&self) -> &str {
        self.text.get_or_init(|| self.render())
    }

    fn render(&self) -> String {
        let mut text = String::with_capacity(16);
        if self.epoch != 0 {
            push_number(&mut text, self.epoch);
            text.push('!');
        }
        for (i, part) in self.release.iter().enumerate() {
            if i > 0 {
                text.push('.');
            }
            push_number(&mut text, *part);
        }
        if let Some((phase, n)) = self.pre {
            text.push_str(phase.as_str());
            push_number(&mut text, n);
        }
        if let Some(n) = self.post {
            text.push_str(".post");
            push_number(&mut text, n);
        }
        if let Some(n) = self.dev {
            text.push_str(".dev");
            push_number(&mut text, n);
        }
        if let Some(local) = &self.local {
            text.push('+');
            for (i, part) in local.iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                text.push_str(part);
            }
        }
        if text.bytes().any(|b| b.is_ascii_uppercase()) {
            text = text.to_lowercase();
        }
        text
    }
    pub fn precision(&self) -> usize {
        self.release.len()
    }
    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some()
    }
    pub fn is_postrelease(&self) -> bool {
        self.post.is_some()
    }
    pub fn is_devrelease(&self) -> bool {
        self.dev.is_some()
    }
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }
    pub fn is_unstable(&self) -> bool {
        self.is_prerelease() || self.is_devrelease()
    }
    pub fn is_stable(&self) -> bool {
        !self.is_unstable()
    }

    fn release_key(release: &[u64]) -> &[u64] {
        let mut end = release.len();
        while end > 0 && release[end - 1] == 0 {
            end -= 1;
        }
        &release[..end]
    }

    fn slots(&self) -> (Slot, Slot, Slot) {
        let pre = match self.pre {
            None if self.post.is_none() && self.dev.is_some() => Slot::NegInf,
            None => Slot::Inf,
            Some((phase, n)) => Slot::Tag(phase as u8, n),
        };
        let post = match self.post {
            None => Slot::NegInf,
            Some(n) => Slot::Tag(0, n),
        };
        let dev = match self.dev {
            None => Slot::Inf,
            Some(n) => Slot::Tag(0, n),
        };
        (pre, post, dev)
    }

    fn local_cmp(&self, other: &Version) -> Ordering {
        if self.local.is_none() && other.local.is_none() {
            return Ordering::Equal;
        }
        self.local_key().cmp(&other.local_key())
    }

    fn local_key(&self) -> Vec<LocalPart<'_>> {
        match &self.local {
            None => vec![LocalPart::Alpha("")],
            Some(parts) => parts
                .iter()
                .map(|p| match p.parse::<u64>() {
                    Ok(n) if p.chars().all(|c| c.is_ascii_digit()) => LocalPart::Num(n),
                    _ => LocalPart::Alpha(p),
                })
                .collect(),
        }
    }

    fn with(
        &self,
        pre: Option<(Phase, u64)>,
        post: Option<u64>,
        dev: Option<u64>,
        local: Option<Vec<String>>,
    ) -> Version {
        Version::new(self.epoch, self.release.clone(), pre, post, dev, local)
    }

    fn with_release(&self, release: Vec<u64>) -> Version {
        Version::new(self.epoch, release, None, None, None, None)
    }

    /// The release with pre/dev removed (poetry-core's `Version.stable`).
    pub fn stable(&self) -> Version {
        if self.is_stable() {
            return self.clone();
        }
        let post = if self.pre.is_none() { self.post } else { None };
        Version::new(self.epoch, self.release.clone(), None, post, None, None)
    }

    fn is_increment_required(&self) -> bool {
        self.is_stable() || (!self.is_prerelease() && self.is_postrelease())
    }

    fn key_lt(a: &[u64], b: &[u64]) -> bool {
        Version::release_key(a) < Version::release_key(b)
    }

    pub fn next_major(&self) -> Version {
        let r = &self.release;
        let mut release = r.clone();
        if self.is_increment_required() || Version::key_lt(&[r[0]], r) {
            release = release_next_major(r);
        }
        self.with_release(release)
    }

    pub fn next_minor(&self) -> Version {
        let r = &self.release;
        let mut release = r.clone();
        let probe = [r[0], r.get(1).copied().unwrap_or(0)];
        if self.is_increment_required() || Version::key_lt(&probe, r) {
            release = release_next_minor(r);
        }
        self.with_release(release)
    }

    pub fn next_patch(&self) -> Version {
        let r = &self.release;
        let mut release = r.clone();
        let probe = [r[0], r.get(1).copied().unwrap_or(0), r.get(2).copied().unwrap_or(0)];
        if self.is_increment_required() || Version::key_lt(&probe, r) {
            release = release_next_patch(r);
        }
        self.with_release(release)
    }

    pub fn next_breaking(&self) -> Version {
        let r = &self.release;
        if r[0] > 0 || r.len() < 2 {
            return self.stable().next_major();
        }
        if r[1] > 0 || r.len() < 3 {
            return self.stable().next_minor();
        }
        self.stable().next_patch()
    }

    fn next_stable(&self) -> Version {
        let release = if self.is_stable() { release_next(&self.release) } else { self.release.clone() };
        Version::new(self.epoch, release, None, None, None, self.local.clone())
    }

    fn next_prerelease(&self) -> Version {
        let pre = match self.pre {
            Some((phase, n)) if !self.is_devrelease() || self.is_postrelease() => Some((phase, n + 1)),
            Some(pre) => Some(pre),
            None => Some((Phase::Alpha, 0)),
        };
        self.with(pre, None, None, None)
    }

    pub fn next_postrelease(&self) -> Version {
        let post = match self.post {
            Some(n) if self.dev.is_none() => n + 1,
            Some(n) => n,
            None => 0,
        };
        self.with(self.pre, Some(post), None, None)
    }

    pub fn next_devrelease(&self) -> Version {
        let dev = self.dev.map(|n| n + 1).unwrap_or(0);
        self.with(self.pre, self.post, Some(dev), None)
    }

    pub fn first_devrelease(&self) -> Version {
        self.with(self.pre, self.post, Some(0), None)
    }

    pub fn without_local(&self) -> Version {
        self.with(self.pre, self.post, self.dev, None)
    }

    pub fn without_postrelease(&self) -> Version {
        if self.is_postrelease() {
            self.with(self.pre, None, None, self.local.clone())
        } else {
            self.clone()
        }
    }

    pub fn without_devrelease(&self) -> Version {
        self.with(self.pre, self.post, None, self.local.clone())
    }

    /// The same version with the release padded to at least `major.minor.patch` (for `python_full_version`).
    pub fn with_full_release(&self) -> Version {
        let mut release = self.release.clone();
        while release.len() < 3 {
            release.push(0);
        }
        Version::new(self.epoch, release, self.pre, self.post, self.dev, self.local.clone())
    }

    /// Weak equality: `3.0.0+local` is allowed by `3.0.0`.
    pub fn allows(&self, other: &Version) -> bool {
        if !self.is_local() && other.is_local() {
            return *self == other.without_local();
        }
        self == other
    }
}

/// `n` in decimal (without the formatting machinery: this runs for every version of a lock).
fn push_number(text: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[start..] {
        text.push(char::from(d));
    }
}

fn release_next_major(r: &[u64]) -> Vec<u64> {
    let mut out = vec![r[0] + 1];
    out.extend(std::iter::repeat_n(0, r.len() - 1));
    out
}

fn release_next_minor(r: &[u64]) -> Vec<u64> {
    if r.len() == 1 {
        return vec![r[0], 1];
    }
    let mut out = vec![r[0], r[1] + 1];
    out.extend(std::iter::repeat_n(0, r.len() - 2));
    out
}

fn release_next_patch(r: &[u64]) -> Vec<u64> {
    match r.len() {
        1 => vec![r[0], 0, 1],
        2 => vec![r[0], r[1], 1],
        _ => {
            let mut out = vec![r[0], r[1], r[2] + 1];
            out.extend(std::iter::repeat_n(0, r.len() - 3));
            out
        }
    }
}

fn release_next(r: &[u64]) -> Vec<u64> {
    match r.len() {
        1 => release_next_major(r),
        2 => release_next_minor(r),
        3 => release_next_patch(r),
        _ => {
            let mut out = r.to_vec();
            *out.last_mut().unwrap() += 1;
            out
        }
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| Version::release_key(&self.release).cmp(Version::release_key(&other.release)))
            .then_with(|| self.slots().cmp(&other.slots()))
            .then_with(|| self.local_cmp(other))
    }
}

impl Hash for Version {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.epoch.hash(state);
        Version::release_key(&self.release).hash(state);
        self.slots().hash(state);
        if self.local.is_some() {
            self.local_key().hash(state);
        }
    }
}

impl Hash for Slot {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Slot::NegInf => 0u8.hash(state),
            Slot::Tag(p, n) => {
                1u8.hash(state);
                p.hash(state);
                n.hash(state)
            }
            Slot::Inf => 2u8.hash(state),
        }
    }
}

/// Parses the longest prefix of `s` (lowercase) that `packaging`'s VERSION_PATTERN matches (possessively);
/// returns the version and where the rest of `s` starts. Plain byte indexing: this runs for every version of a
/// lock, and `cargo xtask` links unoptimized copies of std's generic slice and iterator helpers.
fn parse_version_prefix(s: &str) -> Option<(Version, usize)> {
    let b = s.as_bytes();
    // The byte at `i`, 0 past the end.
    let at = |i: usize| -> u8 {
        if i < b.len() {
            b[i]
        } else {
            0
        }
    };
    let digits = |i: usize| -> usize {
        let mut j = i;
        while at(j).is_ascii_digit() {
            j += 1;
        }
        j
    };
    // The digits from..to as a number (saturating, like `parse::<u64>().unwrap_or(u64::MAX)`).
    let number = |from: usize, to: usize| -> u64 {
        let (mut n, mut k) = (0u64, from);
        while k < to {
            n = n.checked_mul(10).and_then(|n| n.checked_add(u64::from(b[k] - b'0'))).unwrap_or(u64::MAX);
            k += 1;
        }
        n
    };
    // Whether `word` is at `i`.
    let has = |i: usize, word: &[u8]| -> bool {
        let mut k = 0;
        while k < word.len() && at(i + k) == word[k] {
            k += 1;
        }
        k == word.len()
    };
    // The first of `labels` that is at `i`.
    let label_at = |i: usize, labels: &[&'static [u8]]| -> Option<&'static [u8]> {
        let mut n = 0;
        while n < labels.len() {
            if has(i, labels[n]) {
                return Some(labels[n]);
            }
            n += 1;
        }
        None
    };
    let sep = |i: usize| -> usize {
        if matches!(at(i), b'.' | b'_' | b'-') {
            i + 1
        } else {
            i
        }
    };
    // The number after a label of `len` bytes at `j` (`rc1`, `post-2`, `dev`: 0 if none) and where it ends.
    let numbered = |j: usize, len: usize| -> (u64, usize) {
        let k = sep(j + len);
        let m = digits(k);
        if m > k {
            (number(k, m), m)
        } else {
            (0, k)
        }
    };
    let mut i = usize::from(at(0) == b'v');
    // epoch
    let mut epoch = 0;
    let j = digits(i);
    if j > i && at(j) == b'!' {
        epoch = number(i, j);
        i = j + 1;
    }
    // release
    let j = digits(i);
    if j == i {
        return None;
    }
    let mut release = Vec::with_capacity(4);
    release.push(number(i, j));
    i = j;
    while at(i) == b'.' {
        let j = digits(i + 1);
        if j == i + 1 {
            break;
        }
        release.push(number(i + 1, j));
        i = j;
    }
    // pre (the first label that matches, in this order)
    let mut pre = None;
    let j = sep(i);
    if let Some(label) = label_at(j, &[b"alpha", b"a", b"beta", b"b", b"preview", b"pre", b"c", b"rc"]) {
        let phase = match label[0] {
            b'a' => Phase::Alpha,
            b'b' => Phase::Beta,
            _ => Phase::Rc,
        };
        let (n, end) = numbered(j, label.len());
        pre = Some((phase, n));
        i = end;
    }
    // post (`-1`, or a label)
    let mut post = None;
    if at(i) == b'-' && digits(i + 1) > i + 1 {
        let m = digits(i + 1);
        post = Some(number(i + 1, m));
        i = m;
    } else {
        let j = sep(i);
        if let Some(label) = label_at(j, &[b"post", b"rev", b"r"]) {
            let (n, end) = numbered(j, label.len());
            post = Some(n);
            i = end;
        }
    }
    // dev
    let mut dev = None;
    let j = sep(i);
    if has(j, b"dev") {
        let (n, end) = numbered(j, 3);
        dev = Some(n);
        i = end;
    }
    // local
    let mut local = None;
    if at(i) == b'+' {
        let alnum = |i: usize| -> usize {
            let mut j = i;
            while at(j).is_ascii_alphanumeric() {
                j += 1;
            }
            j
        };
        let j = alnum(i + 1);
        if j > i + 1 {
            let mut parts = vec![s[i + 1..j].to_string()];
            let mut k = j;
            while matches!(at(k), b'.' | b'_' | b'-') {
                let m = alnum(k + 1);
                if m == k + 1 {
                    break;
                }
                parts.push(s[k + 1..m].to_string());
                k = m;
            }
            local = Some(parts);
            i = k;
        }
    }
    Some((Version::new(epoch, release, pre, post, dev, local), i))
}

// ---------------------------------------------------------------------------------------------------------
// Constraints
// ---------------------------------------------------------------------------------------------------------

/// A contiguous range of versions; `None` bounds are open.
#[derive(Debug, Clone)]
pub struct Range {
    pub min: Option<Version>,
    pub max: Option<Version>,
    pub include_min: bool,
    pub include_max: bool,
}

/// poetry-core's version constraints. `Union` holds only `Version`s and `Range`s, sorted and disjoint.
#[derive(Debug, Clone)]
pub enum Constraint {
    Empty,
    Version(Version),
    Range(Range),
    Union(Vec<Constraint>),
}

impl Range {
    pub fn new(min: Option<Version>, max: Option<Version>, include_min: bool, include_max: bool) -> Range {
        Range { min, max, include_min, include_max }
    }
    pub fn any() -> Range {
        Range::new(None, None, false, false)
    }
}

fn range_or_empty(min: Option<Version>, max: Option<Version>, include_min: bool, include_max: bool) -> Constraint {
    let range = Range::new(min, max, include_min, include_max);
    if range_is_empty(&range) {
        Constraint::Empty
    } else {
        Constraint::Range(range)
    }
}

fn range_is_empty(r: &Range) -> bool {
    match (&r.min, &r.max) {
        (Some(min), Some(max)) => {
            if min == max {
                !(r.include_min && r.include_max)
            } else {
                min > max
            }
        }
        _ => false,
    }
}

/// Uniform view of a `Version` or a `Range` (poetry-core's `VersionRangeConstraint`).
impl Constraint {
    pub fn any() -> Constraint {
        Constraint::Range(Range::any())
    }

    fn min(&self) -> Option<&Version> {
        match self {
            Constraint::Version(v) => Some(v),
            Constraint::Range(r) => r.min.as_ref(),
            _ => unreachable!("min of a non-range constraint"),
        }
    }
    fn max(&self) -> Option<&Version> {
        match self {
            Constraint::Version(v) => Some(v),
            Constraint::Range(r) => r.max.as_ref(),
            _ => unreachable!("max of a non-range constraint"),
        }
    }
    fn include_min(&self) -> bool {
        match self {
            Constraint::Version(_) => true,
            Constraint::Range(r) => r.include_min,
            _ => unreachable!(),
        }
    }
    fn include_max(&self) -> bool {
        match self {
            Constraint::Version(_) => true,
            Constraint::Range(r) => r.include_max,
            _ => unreachable!(),
        }
    }

    fn allows_lower(&self, other: &Constraint) -> bool {
        match (self.min(), other.min()) {
            (None, o) => o.is_some(),
            (Some(_), None) => false,
            (Some(a), Some(b)) => match a.cmp(b) {
                Ordering::Less => true,
                Ordering::Greater => false,
                Ordering::Equal => self.include_min() && !other.include_min(),
            },
        }
    }

    fn allows_higher(&self, other: &Constraint) -> bool {
        match (self.max(), other.max()) {
            (None, o) => o.is_some(),
            (Some(_), None) => false,
            (Some(a), Some(b)) => match a.cmp(b) {
                Ordering::Less => false,
                Ordering::Greater => true,
                Ordering::Equal => self.include_max() && !other.include_max(),
            },
        }
    }

    fn is_strictly_lower(&self, other: &Constraint) -> bool {
        match (self.max(), other.min()) {
            (Some(a), Some(b)) => match a.cmp(b) {
                Ordering::Less => true,
                Ordering::Greater => false,
                Ordering::Equal => !(self.include_max() && other.include_min()),
            },
            _ => false,
        }
    }

    fn is_strictly_higher(&self, other: &Constraint) -> bool {
        other.is_strictly_lower(self)
    }

    fn is_adjacent_to(&self, other: &Constraint) -> bool {
        if self.max() != other.min() {
            return false;
        }
        (self.include_max() && !other.include_min()) || (!self.include_max() && other.include_min())
    }

    fn cmp_ranges(&self, other: &Constraint) -> Ordering {
        let compare_max = || -> Ordering {
            match (self.max(), other.max()) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b).then_with(|| {
                    if self.include_max() != other.include_max() {
                        if self.include_max() {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    } else {
                        Ordering::Equal
                    }
                }),
            }
        };
        match (self.min(), other.min()) {
            (None, None) => compare_max(),
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(a), Some(b)) => match a.cmp(b) {
                Ordering::Equal => {
                    if self.include_min() != other.include_min() {
                        if self.include_min() {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    } else {
                        compare_max()
                    }
                }
                o => o,
            },
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Constraint::Empty => true,
            Constraint::Range(r) => range_is_empty(r),
            _ => false,
        }
    }

    pub fn is_any(&self) -> bool {
        matches!(self, Constraint::Range(r) if r.min.is_none() && r.max.is_none())
    }

    pub fn is_simple(&self) -> bool {
        match self {
            Constraint::Empty | Constraint::Version(_) => true,
            Constraint::Range(r) => r.min.is_none() || r.max.is_none(),
            Constraint::Union(_) => self.excluded_single_version().is_some(),
        }
    }

    /// The ranges of this constraint (poetry-core's `flatten`).
    pub fn flatten(&self) -> Vec<Constraint> {
        match self {
            Constraint::Empty => vec![],
            Constraint::Union(ranges) => ranges.clone(),
            other => vec![other.clone()],
        }
    }

    pub fn allows(&self, version: &Version) -> bool {
        match self {
            Constraint::Empty => false,
            Constraint::Version(v) => v.allows(version),
            Constraint::Range(r) => range_allows(r, version),
            Constraint::Union(ranges) => {
                if let Some(excluded) = self.excluded_single_version() {
                    return !excluded.allows(version);
                }
                ranges.iter().any(|r| r.allows(version))
            }
        }
    }

    pub fn allows_all(&self, other: &Constraint) -> bool {
        match self {
            Constraint::Empty => other.is_empty(),
            Constraint::Version(v) => {
                other.is_empty()
                    || match other {
                        Constraint::Version(o) => v.allows(o),
                        _ => other == self,
                    }
            }
            Constraint::Range(r) => {
                if other.is_empty() {
                    return true;
                }
                match other {
                    Constraint::Version(o) => {
                        if !range_allows(r, o) {
                            return false;
                        }
                        if o.is_local() {
                            return true;
                        }
                        !(r.max.as_ref().is_some_and(|m| m.is_local() && m.without_local() == *o))
                    }
                    Constraint::Union(ranges) => ranges.iter().all(|c| self.allows_all(c)),
                    Constraint::Range(_) => !other.allows_lower(self) && !other.allows_higher(self),
                    Constraint::Empty => true,
                }
            }
            Constraint::Union(ours) => {
                let theirs = other.flatten();
                let (mut i, mut j) = (0, 0);
                while i < ours.len() && j < theirs.len() {
                    if ours[i].allows_all(&theirs[j]) {
                        j += 1;
                    } else {
                        i += 1;
                    }
                }
                j >= theirs.len()
            }
        }
    }

    pub fn allows_any(&self, other: &Constraint) -> bool {
        match self {
            Constraint::Empty => false,
            Constraint::Version(_) => !self.intersect(other).is_empty(),
            Constraint::Range(r) => {
                if other.is_empty() {
                    return false;
                }
                match other {
                    Constraint::Version(o) => {
                        range_allows(r, o) || r.min.as_ref().is_some_and(|m| m.is_local() && o.allows(m))
                    }
                    Constraint::Union(ranges) => ranges.iter().any(|c| self.allows_any(c)),
                    _ => !(other.is_strictly_lower(self) || other.is_strictly_higher(self)),
                }
            }
            Constraint::Union(ours) => {
                let theirs = other.flatten();
                let (mut i, mut j) = (0, 0);
                while i < ours.len() && j < theirs.len() {
                    if ours[i].allows_any(&theirs[j]) {
                        return true;
                    }
                    if theirs[j].allows_higher(&ours[i]) {
                        i += 1;
                    } else {
                        j += 1;
                    }
                }
                false
            }
        }
    }

    pub fn intersect(&self, other: &Constraint) -> Constraint {
        match self {
            Constraint::Empty => Constraint::Empty,
            Constraint::Version(v) => match other {
                Constraint::Version(o) => {
                    if v.allows(o) {
                        other.clone()
                    } else if o.allows(v) {
                        self.clone()
                    } else {
                        Constraint::Empty
                    }
                }
                _ => other.intersect(self),
            },
            Constraint::Range(r) => {
                if other.is_empty() {
                    return Constraint::Empty;
                }
                match other {
                    Constraint::Union(_) => other.intersect(self),
                    Constraint::Version(o) => {
                        if range_allows(r, o) {
                            return other.clone();
                        }
                        if let Some(min) = &r.min {
                            if min.is_local() && !o.is_local() && o.allows(min) {
                                let upper = o.stable().next_patch();
                                return range_or_empty(Some(min.clone()), Some(upper), r.include_min, false);
                            }
                        }
                        Constraint::Empty
                    }
                    _ => {
                        let (min, include_min) = if self.allows_lower(other) {
                            if self.is_strictly_lower(other) {
                                return Constraint::Empty;
                            }
                            (other.min().cloned(), other.include_min())
                        } else {
                            if other.is_strictly_lower(self) {
                                return Constraint::Empty;
                            }
                            (r.min.clone(), r.include_min)
                        };
                        let (max, include_max) = if self.allows_higher(other) {
                            (other.max().cloned(), other.include_max())
                        } else {
                            (r.max.clone(), r.include_max)
                        };
                        if min.is_none() && max.is_none() {
                            return Constraint::any();
                        }
                        if min == max {
                            return Constraint::Version(min.unwrap());
                        }
                        range_or_empty(min, max, include_min, include_max)
                    }
                }
            }
            Constraint::Union(ours) => {
                let theirs = other.flatten();
                let mut new_ranges = Vec::new();
                let (mut i, mut j) = (0, 0);
                while i < ours.len() && j < theirs.len() {
                    let intersection = ours[i].intersect(&theirs[j]);
                    if !intersection.is_empty() {
                        new_ranges.push(intersection);
                    }
                    if theirs[j].allows_higher(&ours[i]) {
                        i += 1;
                    } else {
                        j += 1;
                    }
                }
                union_of(new_ranges)
            }
        }
    }

    pub fn union(&self, other: &Constraint) -> Constraint {
        match self {
            Constraint::Empty => other.clone(),
            Constraint::Version(v) => match other {
                Constraint::Version(o) => {
                    if o.allows(v) {
                        other.clone()
                    } else if v.allows(o) {
                        self.clone()
                    } else {
                        union_of(vec![self.clone(), other.clone()])
                    }
                }
                _ => other.union(self),
            },
            Constraint::Range(r) => match other {
                Constraint::Version(o) => {
                    let mut new_min = r.min.clone();
                    let mut new_include_min = r.include_min;
                    let mut new_max = r.max.clone();
                    let mut new_include_max = r.include_max;
                    let mut broadened = false;
                    if !o.is_local() {
                        if r.min.as_ref().is_some_and(|m| m.is_local() && o.allows(m)) {
                            new_min = Some(o.clone());
                            new_include_min = true;
                            broadened = true;
                        }
                        if r.max.as_ref().is_some_and(|m| m.is_local() && o.allows(m)) {
                            new_max = Some(o.stable().next_patch());
                            new_include_max = false;
                            broadened = true;
                        }
                    }
                    if broadened {
                        return range_or_empty(new_min, new_max, new_include_min, new_include_max);
                    }
                    if range_allows(r, o) {
                        return self.clone();
                    }
                    if r.min.as_ref() == Some(o) {
                        return Constraint::Range(Range::new(r.min.clone(), r.max.clone(), true, r.include_max));
                    }
                    if r.max.as_ref() == Some(o) {
                        return Constraint::Range(Range::new(r.min.clone(), r.max.clone(), r.include_min, true));
                    }
                    union_of(vec![self.clone(), other.clone()])
                }
                Constraint::Range(_) => {
                    let edges_touch = (self.max() == other.min() && (self.include_max() || other.include_min()))
                        || (self.min() == other.max() && (self.include_min() || other.include_max()));
                    if !edges_touch && !self.allows_any(other) {
                        return union_of(vec![self.clone(), other.clone()]);
                    }
                    let (min, include_min) = if self.allows_lower(other) {
                        (self.min().cloned(), self.include_min())
                    } else {
                        (other.min().cloned(), other.include_min())
                    };
                    let (max, include_max) = if self.allows_higher(other) {
                        (self.max().cloned(), self.include_max())
                    } else {
                        (other.max().cloned(), other.include_max())
                    };
                    Constraint::Range(Range::new(min, max, include_min, include_max))
                }
                _ => union_of(vec![self.clone(), other.clone()]),
            },
            Constraint::Union(_) => union_of(vec![self.clone(), other.clone()]),
        }
    }

    pub fn difference(&self, other: &Constraint) -> Constraint {
        match self {
            Constraint::Empty => Constraint::Empty,
            Constraint::Version(v) => {
                if other.allows_all(self) {
                    return Constraint::Empty;
                }
                if other.allows_any(self) {
                    let upper = if v.is_devrelease() { v.next_devrelease() } else { v.next_postrelease() };
                    return Constraint::Range(Range::new(Some(v.clone()), Some(upper), true, false)).difference(other);
                }
                self.clone()
            }
            Constraint::Range(r) => {
                if other.is_empty() {
                    return self.clone();
                }
                match other {
                    Constraint::Version(o) => {
                        if !range_allows(r, o) {
                            return self.clone();
                        }
                        if r.min.as_ref() == Some(o) {
                            if !r.include_min {
                                return self.clone();
                            }
                            return range_or_empty(r.min.clone(), r.max.clone(), false, r.include_max);
                        }
                        if r.max.as_ref() == Some(o) {
                            if !r.include_max {
                                return self.clone();
                            }
                            return range_or_empty(r.min.clone(), r.max.clone(), r.include_min, false);
                        }
                        union_of(vec![
                            range_or_empty(r.min.clone(), Some(o.clone()), r.include_min, false),
                            range_or_empty(Some(o.clone()), r.max.clone(), false, r.include_max),
                        ])
                    }
                    Constraint::Range(_) => {
                        if !self.allows_any(other) {
                            return self.clone();
                        }
                        let before = if !self.allows_lower(other) {
                            None
                        } else if self.min() == other.min() {
                            Some(Constraint::Version(self.min().unwrap().clone()))
                        } else {
                            Some(range_or_empty(
                                self.min().cloned(),
                                other.min().cloned(),
                                self.include_min(),
                                !other.include_min(),
                            ))
                        };
                        let after = if !self.allows_higher(other) {
                            None
                        } else if self.max() == other.max() {
                            Some(Constraint::Version(self.max().unwrap().clone()))
                        } else {
                            Some(range_or_empty(
                                other.max().cloned(),
                                self.max().cloned(),
                                !other.include_max(),
                                self.include_max(),
                            ))
                        };
                        match (before, after) {
                            (None, None) => Constraint::Empty,
                            (None, Some(a)) => a,
                            (Some(b), None) => b,
                            (Some(b), Some(a)) => union_of(vec![b, a]),
                        }
                    }
                    Constraint::Union(theirs) => {
                        let mut ranges = Vec::new();
                        let mut current = self.clone();
                        for range in theirs {
                            if range.is_strictly_lower(&current) {
                                continue;
                            }
                            if range.is_strictly_higher(&current) {
                                break;
                            }
                            let difference = current.difference(range);
                            match difference {
                                Constraint::Empty => return Constraint::Empty,
                                Constraint::Union(parts) => {
                                    ranges.push(parts[0].clone());
                                    current = parts.last().unwrap().clone();
                                }
                                d if d.is_empty() => return Constraint::Empty,
                                d => current = d,
                            }
                        }
                        if ranges.is_empty() {
                            return current;
                        }
                        ranges.push(current);
                        union_of(ranges)
                    }
                    Constraint::Empty => self.clone(),
                }
            }
            Constraint::Union(ours) => union_difference(ours, other),
        }
    }

    /// For a union that excludes exactly one version (`!=3.8`): that version.
    fn excluded_single_version(&self) -> Option<Version> {
        match Constraint::any().difference(self) {
            Constraint::Version(v) => Some(v),
            _ => None,
        }
    }

    fn excludes_single_wildcard_range(ranges: &[Constraint]) -> Option<String> {
        if ranges.len() != 2 {
            return None;
        }
        let (one, two) = if ranges[0].max().is_some() { (&ranges[0], &ranges[1]) } else { (&ranges[1], &ranges[0]) };
        let (Some(one_max), None, Some(two_min), None) = (one.max(), one.min(), two.min(), two.max()) else {
            return None;
        };
        if one.include_max() || !two.include_min() {
            return None;
        }
        is_wildcard_candidate(two_min, one_max, true).then(|| format!("!={}", wildcard_string(one_max, two_min)))
    }
}

/// The difference of a union and another constraint (poetry-core's `VersionUnion.difference`).
fn union_difference(ours: &[Constraint], other: &Constraint) -> Constraint {
    let theirs = other.flatten();
    let mut our_iter = ours.iter().cloned();
    let mut their_iter = theirs.into_iter();
    let mut new_ranges: Vec<Constraint> = Vec::new();
    let mut current = our_iter.next();
    let mut their_range = their_iter.next();

    // Returns false when the walk is over.
    fn push_rest(new_ranges: &mut Vec<Constraint>, current: &Constraint, rest: &mut dyn Iterator<Item = Constraint>) {
        new_ranges.push(current.clone());
        for r in rest {
            new_ranges.push(r);
        }
    }

    while let Some(their) = their_range.clone() {
        let cur = current.clone().expect("current range");
        if their.is_strictly_lower(&cur) {
            their_range = their_iter.next();
            if their_range.is_none() {
                push_rest(&mut new_ranges, &cur, &mut our_iter);
                break;
            }
            continue;
        }
        if their.is_strictly_higher(&cur) {
            new_ranges.push(cur);
            match our_iter.next() {
                Some(next) => current = Some(next),
                None => break,
            }
            continue;
        }
        let difference = cur.difference(&their);
        match difference {
            Constraint::Union(parts) => {
                new_ranges.push(parts[0].clone());
                let last = parts.last().unwrap().clone();
                current = Some(last.clone());
                their_range = their_iter.next();
                if their_range.is_none() {
                    push_rest(&mut new_ranges, &last, &mut our_iter);
                    break;
                }
            }
            d if d.is_empty() => match our_iter.next() {
                Some(next) => current = Some(next),
                None => break,
            },
            d => {
                current = Some(d.clone());
                if d.allows_higher(&their) {
                    their_range = their_iter.next();
                    if their_range.is_none() {
                        push_rest(&mut new_ranges, &d, &mut our_iter);
                        break;
                    }
                } else {
                    new_ranges.push(d);
                    match our_iter.next() {
                        Some(next) => current = Some(next),
                        None => break,
                    }
                }
            }
        }
    }
    match new_ranges.len() {
        0 => Constraint::Empty,
        1 => new_ranges.pop().unwrap(),
        _ => union_of(new_ranges),
    }
}

fn range_allows(r: &Range, other: &Version) -> bool {
    if let Some(min) = &r.min {
        let mut other_v = other.clone();
        if !r.include_min && !min.is_postrelease() && other_v.is_postrelease() {
            other_v = other_v.without_postrelease();
        }
        if !min.is_local() && other_v.is_local() {
            other_v = other_v.without_local();
        }
        if other_v < *min {
            return false;
        }
        if !r.include_min && other_v == *min {
            return false;
        }
    }
    if let Some(max) = &r.max {
        let mut other_v = other.clone();
        if !max.is_local() && other_v.is_local() {
            other_v = other_v.without_local();
        }
        if other_v > *max {
            return false;
        }
        if !r.include_max && other_v == *max {
            return false;
        }
    }
    true
}

/// poetry-core's `VersionUnion.of`: flatten, sort, merge touching ranges.
pub fn union_of(constraints: Vec<Constraint>) -> Constraint {
    let mut flattened: Vec<Constraint> = Vec::new();
    for c in constraints {
        if c.is_empty() {
            continue;
        }
        match c {
            Constraint::Union(ranges) => flattened.extend(ranges),
            other => flattened.push(other),
        }
    }
    if flattened.is_empty() {
        return Constraint::Empty;
    }
    if flattened.iter().any(Constraint::is_any) {
        return Constraint::any();
    }
    flattened.sort_by(|a, b| a.cmp_ranges(b));
    let mut merged: Vec<Constraint> = Vec::new();
    for c in flattened {
        match merged.last() {
            Some(last) if last.allows_any(&c) || last.is_adjacent_to(&c) => {
                let new = last.union(&c);
                *merged.last_mut().unwrap() = new;
            }
            _ => merged.push(c),
        }
    }
    if merged.len() == 1 {
        return merged.pop().unwrap();
    }
    Constraint::Union(merged)
}

fn is_wildcard_candidate(min: &Version, max: &Version, inverted: bool) -> bool {
    if min.is_local()
        || max.is_local()
        || min.is_prerelease()
        || max.is_prerelease()
        || min.is_postrelease() != max.is_postrelease()
        || min.first_devrelease() != *min
        || (max.is_devrelease() && max.first_devrelease() != *max)
    {
        return false;
    }
    let (first, second) = if inverted { (max, min) } else { (min, max) };
    let mut parts_first: Vec<u64> = first.release.clone();
    let mut parts_second: Vec<u64> = second.release.clone();
    while parts_second.last() == Some(&0) {
        parts_second.pop();
    }
    if parts_second.is_empty() {
        return false;
    }
    while parts_first.len() < parts_second.len() {
        parts_first.push(0);
    }
    if parts_first[parts_second.len()..].iter().any(|&p| p != 0) {
        return false;
    }
    parts_first.truncate(parts_second.len());
    if first.is_postrelease() {
        return parts_first == parts_second && first.post.map(|p| p + 1) == second.post;
    }
    let n = parts_second.len();
    parts_first[..n - 1] == parts_second[..n - 1] && parts_first[n - 1] + 1 == parts_second[n - 1]
}

fn wildcard_string(first: &Version, second: &Version) -> String {
    let base = if first.is_postrelease() {
        first.without_devrelease().text().to_string()
    } else {
        let mut parts = second.release.clone();
        while parts.last() == Some(&0) {
            parts.pop();
        }
        *parts.last_mut().unwrap() -= 1;
        parts.iter().map(u64::to_string).collect::<Vec<_>>().join(".")
    };
    format!("{base}.*")
}

fn display_max_text(max: &Version, include_max: bool) -> String {
    if !include_max && max.dev == Some(0) && max.pre.is_none() {
        return max.without_devrelease().text().to_string();
    }
    max.text().to_string()
}

fn range_to_string(r: &Range) -> String {
    if let (Some(min), Some(max)) = (&r.min, &r.max) {
        if r.include_min && !r.include_max && is_wildcard_candidate(min, max, false) {
            return format!("=={}", wildcard_string(min, max));
        }
    }
    let mut text = String::new();
    if let Some(min) = &r.min {
        text.push_str(if r.include_min { ">=" } else { ">" });
        text.push_str(min.text());
    }
    if let Some(max) = &r.max {
        if r.min.is_some() {
            text.push(',');
        }
        text.push_str(if r.include_max { "<=" } else { "<" });
        text.push_str(&display_max_text(max, r.include_max));
    }
    if r.min.is_none() && r.max.is_none() {
        return "*".to_string();
    }
    text
}

fn punctured(group: &[&Constraint]) -> String {
    if group.len() == 1 {
        return group[0].to_string();
    }
    let (first, last) = (group[0], group[group.len() - 1]);
    let mut parts = Vec::new();
    if let Some(min) = first.min() {
        parts.push(format!("{}{}", if first.include_min() { ">=" } else { ">" }, min.text()));
    }
    for r in &group[..group.len() - 1] {
        parts.push(format!("!={}", r.max().unwrap().text()));
    }
    if let Some(max) = last.max() {
        parts.push(format!(
            "{}{}",
            if last.include_max() { "<=" } else { "<" },
            display_max_text(max, last.include_max())
        ));
    }
    parts.join(",")
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Constraint::Empty => f.write_str("<empty>"),
            Constraint::Version(v) => f.write_str(v.text()),
            Constraint::Range(r) => f.write_str(&range_to_string(r)),
            Constraint::Union(ranges) => {
                if let Some(s) = Constraint::excludes_single_wildcard_range(ranges) {
                    return f.write_str(&s);
                }
                let mut sorted: Vec<&Constraint> = ranges.iter().collect();
                sorted.sort_by(|a, b| a.cmp_ranges(b));
                let mut groups: Vec<Vec<&Constraint>> = vec![vec![sorted[0]]];
                for pair in sorted.windows(2) {
                    let (prev, cur) = (pair[0], pair[1]);
                    if prev.max().is_some() && prev.max() == cur.min() && !prev.include_max() && !cur.include_min() {
                        groups.last_mut().unwrap().push(cur);
                    } else {
                        groups.push(vec![cur]);
                    }
                }
                let text: Vec<String> = groups.iter().map(|g| punctured(g)).collect();
                f.write_str(&text.join(" || "))
            }
        }
    }
}

impl PartialEq for Constraint {
    fn eq(&self, other: &Constraint) -> bool {
        match (self, other) {
            (Constraint::Empty, o) | (o, Constraint::Empty) => o.is_empty() && self.is_empty(),
            (Constraint::Version(a), Constraint::Version(b)) => a == b,
            (Constraint::Version(v), Constraint::Range(r)) => {
                r.min.as_ref() == Some(v) && r.max.as_ref() == Some(v) && (r.include_min || r.include_max)
            }
            (Constraint::Range(_), Constraint::Version(_)) | (Constraint::Range(_), Constraint::Range(_)) => {
                self.min() == other.min()
                    && self.max() == other.max()
                    && self.include_min() == other.include_min()
                    && self.include_max() == other.include_max()
            }
            (Constraint::Union(a), Constraint::Union(b)) => a == b,
            _ => false,
        }
    }
}
impl Eq for Constraint {}

impl Hash for Constraint {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Constraint::Empty => 0u8.hash(state),
            Constraint::Version(_) | Constraint::Range(_) => {
                // Versions and point ranges may compare equal: hash only what they share.
                1u8.hash(state);
                self.min().hash(state);
                self.max().hash(state);
            }
            Constraint::Union(ranges) => {
                2u8.hash(state);
                ranges.hash(state);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Parsing constraints
// ---------------------------------------------------------------------------------------------------------

/// A version constraint as written in pyproject.toml or a lock file (`^1.2`, `>=1,<2`, `1.*`).
pub fn parse_constraint(s: &str) -> Option<Constraint> {
    cached_parse(&CONSTRAINT_CACHE, s, false)
}

/// A version constraint from a marker (`python_version`); `<V` is not widened to `<V.dev0`.
pub fn parse_marker_constraint(s: &str) -> Option<Constraint> {
    cached_parse(&MARKER_CONSTRAINT_CACHE, s, true)
}

type ParseCache = Memo<FastMap<String, Option<Constraint>>>;

thread_local! {
    // Lock files repeat the same few constraints thousands of times (poetry-core caches these too).
    static CONSTRAINT_CACHE: ParseCache = memo(Default::default());
    static MARKER_CONSTRAINT_CACHE: ParseCache = memo(Default::default());
}

fn cached_parse(cache: &'static std::thread::LocalKey<ParseCache>, s: &str, marker: bool) -> Option<Constraint> {
    if let Some(hit) = cache.with(|c| c.borrow().get(s).cloned()) {
        return hit;
    }
    let parsed = parse(s, marker, true);
    cache.with(|c| c.borrow_mut().insert(s.to_string(), parsed.clone()));
    parsed
}

/// Like `parse_marker_constraint`, for `platform_release` (non-PEP 440 versions allowed).
pub fn parse_release_constraint(s: &str) -> Option<Constraint> {
    parse(s, true, false)
}

fn parse(constraints: &str, marker: bool, pep440: bool) -> Option<Constraint> {
    if constraints == "*" {
        return Some(Constraint::any());
    }
    let mut or_groups = Vec::new();
    for or_constraint in split_or(constraints.trim()) {
        let or_constraint = or_constraint.trim_end_matches(',').trim_end();
        let and_constraints = split_and(or_constraint);
        let mut constraint = parse_single(and_constraints[0], marker, pep440)?;
        for next in &and_constraints[1..] {
            constraint = constraint.intersect(&parse_single(next, marker, pep440)?);
        }
        or_groups.push(constraint);
    }
    if or_groups.len() == 1 {
        return or_groups.pop();
    }
    Some(union_of(or_groups))
}

/// `re.split(r"\s*\|\|?\s*", s)`.
pub fn split_or(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        // A match starts at the first whitespace of a run that ends in `|`, or at the `|`.
        let mut j = i;
        while j < b.len() && (b[j] as char).is_whitespace() {
            j += 1;
        }
        if j < b.len() && b[j] == b'|' {
            let mut k = j + 1;
            if k < b.len() && b[k] == b'|' {
                k += 1;
            }
            while k < b.len() && (b[k] as char).is_whitespace() {
                k += 1;
            }
            out.push(&s[start..i]);
            start = k;
            i = k;
            continue;
        }
        i = if j > i { j } else { i + 1 };
    }
    out.push(&s[start..]);
    out
}

/// `re.split(r"(?<!^)(?<![\^~=>< ,]) *(?<!-)[, ](?!-) *(?!,|$)", s)`: the separators of an AND group.
fn split_and(s: &str) -> Vec<&str> {
    let b = s.as_bytes();
    let n = b.len();
    let mut out = Vec::new();
    let mut start = 0;
    let mut p = 1;
    while p < n {
        if let Some(end) = and_separator_at(b, p) {
            out.push(&s[start..p]);
            start = end;
            p = end.max(p + 1);
        } else {
            p += 1;
        }
    }
    out.push(&s[start..]);
    out
}

fn and_separator_at(b: &[u8], p: usize) -> Option<usize> {
    let n = b.len();
    if p == 0 || b"^~=>< ,".contains(&b[p - 1]) {
        return None;
    }
    let mut max_k = 0;
    while p + max_k < n && b[p + max_k] == b' ' {
        max_k += 1;
    }
    for k in (0..=max_k).rev() {
        let q = p + k;
        if q >= n || b[q - 1] == b'-' || !(b[q] == b',' || b[q] == b' ') {
            continue;
        }
        if q + 1 < n && b[q + 1] == b'-' {
            continue;
        }
        let mut max_m = 0;
        while q + 1 + max_m < n && b[q + 1 + max_m] == b' ' {
            max_m += 1;
        }
        for m in (0..=max_m).rev() {
            let r = q + 1 + m;
            if r == n || b[r] == b',' {
                continue;
            }
            return Some(r);
        }
    }
    None
}

fn strip_ci_prefix<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)).then(|| &s[prefix.len()..])
}

fn parse_single(constraint: &str, marker: bool, pep440: bool) -> Option<Constraint> {
    let canon_max = |v: Version| -> Version {
        if marker || v.is_unstable() {
            v
        } else {
            v.first_devrelease()
        }
    };
    let b = constraint.as_bytes();
    let (c0, c1) = (if b.is_empty() { 0 } else { b[0] }, if b.len() < 2 { 0 } else { b[1] });
    // A comparison (`>=1.2`, the most common) is none of the forms before it.
    let comparison = matches!(c0, b'<' | b'>' | b'=' | b'!');
    // `*`, `x`, `x.*`
    if !comparison {
        let t = constraint.strip_prefix('v').unwrap_or(constraint);
        if !t.is_empty() && t.split('.').all(|p| matches!(p, "x" | "X" | "*")) {
            return Some(Constraint::any());
        }
    }
    let full_version = |s: &str| -> Option<Version> { Version::parse_exact_lower(s) };
    // Tilde `~1.2`
    if let Some(rest) = constraint.strip_prefix('~') {
        if !rest.starts_with('=') {
            let version = full_version(rest.trim_start())?;
            let high =
                if version.precision() == 1 { version.stable().next_major() } else { version.stable().next_minor() };
            return Some(Constraint::Range(Range::new(Some(version), Some(canon_max(high)), true, false)));
        }
        // PEP 440 `~=1.2`
        let version = full_version(rest[1..].trim_start())?;
        let stable = version.stable();
        let high = if stable.release.len() < 2 {
            stable.next_major()
        } else {
            let mut parts = stable.release.clone();
            let n = parts.len();
            parts[n - 2] += 1;
            parts[n - 1] = 0;
            Version::new(stable.epoch, parts, None, None, None, None)
        };
        return Some(Constraint::Range(Range::new(Some(version), Some(canon_max(high)), true, false)));
    }
    // Caret `^1.2`
    if let Some(rest) = constraint.strip_prefix('^') {
        let version = full_version(rest.trim_start())?;
        let high = version.next_breaking();
        return Some(Constraint::Range(Range::new(Some(version), Some(canon_max(high)), true, false)));
    }
    // X range `==1.2.*`, `!=1.*`
    if constraint.ends_with(".*") {
        if let Some(c) = parse_x_constraint(constraint, marker) {
            return Some(c);
        }
    }
    // Basic comparator
    // The first of `<>`, `!=`, `>=`, `>`, `<=`, `<`, `==`, `=` that prefixes it.
    let op = match (c0, c1) {
        (b'<', b'>') => "<>",
        (b'!', b'=') => "!=",
        (b'>', b'=') => ">=",
        (b'>', _) => ">",
        (b'<', b'=') => "<=",
        (b'<', _) => "<",
        (b'=', b'=') => "==",
        (b'=', _) => "=",
        _ => "",
    };
    let rest = &constraint[op.len()..];
    let rest = rest.trim_start();
    let parsed_rest = full_version(rest);
    let (version_text, wildcard) = if parsed_rest.is_some() || rest.eq_ignore_ascii_case("dev") {
        (rest, false)
    } else if let Some(base) = rest.strip_suffix(".*") {
        (base, true)
    } else {
        (rest, false)
    };
    let parsed = if version_text.eq_ignore_ascii_case("dev") {
        Version::parse("0.0-dev")
    } else if wildcard {
        full_version(version_text).filter(|_| !version_text.is_empty())
    } else {
        parsed_rest
    };
    if let Some(version) = parsed {
        return Some(match op {
            "<" => Constraint::Range(Range::new(None, Some(canon_max(version)), false, false)),
            "<=" => Constraint::Range(Range::new(None, Some(version), false, true)),
            ">" => Constraint::Range(Range::new(Some(version), None, false, false)),
            ">=" => Constraint::Range(Range::new(Some(version), None, true, false)),
            _ if wildcard => make_x_range(&version, op == "!=", marker),
            "!=" => Constraint::Union(vec![
                Constraint::Range(Range::new(None, Some(version.clone()), false, false)),
                Constraint::Range(Range::new(Some(version), None, false, false)),
            ]),
            _ => Constraint::Version(version),
        });
    }
    if !pep440 {
        // `platform_release`-style release with an optional build suffix.
        let digits_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let release = &rest[..digits_end];
        if release.is_empty() || release.starts_with('.') || release.ends_with('.') || release.contains("..") {
            return None;
        }
        let mut build = &rest[digits_end..];
        if let Some(b) = build.strip_prefix('+').or_else(|| build.strip_prefix('-')) {
            build = b;
        }
        let parsed = Version::parse(release)?;
        let local = (!build.is_empty()).then(|| vec![build.to_string()]);
        let version = Version::new(0, parsed.release.clone(), None, None, None, local);
        return Some(match op {
            "<" => Constraint::Range(Range::new(None, Some(canon_max(version)), false, false)),
            "<=" => Constraint::Range(Range::new(None, Some(version), false, true)),
            ">" => Constraint::Range(Range::new(Some(version), None, false, false)),
            ">=" => Constraint::Range(Range::new(Some(version), None, true, false)),
            "!=" => Constraint::Union(vec![
                Constraint::Range(Range::new(None, Some(version.clone()), false, false)),
                Constraint::Range(Range::new(Some(version), None, false, false)),
            ]),
            _ => Constraint::Version(version),
        });
    }
    let _ = strip_ci_prefix;
    None
}

impl Version {
    /// `Version.parse` on the text a constraint pattern captured (case-insensitive, no surrounding spaces).
    fn parse_exact_lower(s: &str) -> Option<Version> {
        if s.is_empty() || s.trim() != s {
            return None;
        }
        Version::parse(s)
    }
}

/// `^(?P<op>!=|==)?\s*v?(?P<version>(\d+)(?:\.(\d+))?(?:\.(\d+))?)(?:\.\*)+$`
fn parse_x_constraint(constraint: &str, marker: bool) -> Option<Constraint> {
    let (op, rest) = if let Some(r) = constraint.strip_prefix("!=") {
        ("!=", r)
    } else if let Some(r) = constraint.strip_prefix("==") {
        ("==", r)
    } else {
        ("", constraint)
    };
    let rest = rest.trim_start();
    let rest = rest.strip_prefix('v').unwrap_or(rest);
    let mut body = rest;
    let mut stars = 0;
    while let Some(b) = body.strip_suffix(".*") {
        body = b;
        stars += 1;
    }
    if stars == 0 {
        return None;
    }
    let parts: Vec<&str> = body.split('.').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts.iter().any(|p| p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    let version = Version::parse(body)?;
    Some(make_x_range(&version, op == "!=", marker))
}

fn make_x_range(version: &Version, invert: bool, marker: bool) -> Constraint {
    let next = if version.is_postrelease() {
        version.next_postrelease()
    } else if version.is_stable() {
        version.next_stable()
    } else if version.is_prerelease() {
        version.next_prerelease()
    } else {
        version.next_devrelease()
    };
    let mut min = version.clone();
    let mut max = next;
    if !marker {
        min = min.first_devrelease();
        if !max.is_devrelease() {
            max = max.first_devrelease();
        }
    }
    let result = Constraint::Range(Range::new(Some(min), Some(max), true, false));
    if invert {
        return Constraint::any().difference(&result);
    }
    result
}

/// poetry-core's `constraint_regions`: the distinct regions of version space that the constraints' bounds
/// cut out, lowest first.
pub fn constraint_regions(constraints: &[Constraint]) -> Vec<Range> {
    let mut edges: Vec<(Version, bool)> = Vec::new();
    let flattened: Vec<Constraint> = constraints.iter().flat_map(Constraint::flatten).collect();
    let mut mins: Vec<(Version, bool)> = Vec::new();
    for c in &flattened {
        if let Some(min) = c.min() {
            let e = (min.clone(), !c.include_min());
            if !mins.contains(&e) {
                mins.push(e);
            }
        }
    }
    let mut maxs: Vec<(Version, bool)> = Vec::new();
    for c in &flattened {
        if let Some(max) = c.max() {
            let e = (max.clone(), c.include_max());
            if !maxs.contains(&e) {
                maxs.push(e);
            }
        }
    }
    for e in mins.into_iter().chain(maxs) {
        if !edges.contains(&e) {
            edges.push(e);
        }
    }
    edges.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    if edges.is_empty() {
        return vec![Range::any()];
    }
    let mut regions = vec![Range::new(None, Some(edges[0].0.clone()), false, edges[0].1)];
    for pair in edges.windows(2) {
        let (low, high) = (&pair[0], &pair[1]);
        regions.push(Range::new(Some(low.0.clone()), Some(high.0.clone()), !low.1, high.1));
    }
    let end = edges.last().unwrap();
    regions.push(Range::new(Some(end.0.clone()), None, !end.1, false));
    regions
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{expect, Expect};

    fn c(s: &str) -> Constraint {
        parse_constraint(s).unwrap_or_else(|| panic!("cannot parse {s}"))
    }
    fn m(s: &str) -> Constraint {
        parse_marker_constraint(s).unwrap_or_else(|| panic!("cannot parse {s}"))
    }

    fn check(actual: String, expect: Expect) {
        expect.assert_eq(&actual);
    }

    #[test]
    fn versions() {
        let show = |s: &str| match Version::parse(s) {
            Some(v) => v.to_string(),
            None => "invalid".to_string(),
        };
        check(show("1.0"), expect!["1.0"]);
        check(show("v1.0.0RC1"), expect!["1.0.0rc1"]);
        check(show("1.0-1"), expect!["1.0.post1"]);
        check(show("1.0.post"), expect!["1.0.post0"]);
        check(show("1!2.0a.dev"), expect!["1!2.0a0.dev0"]);
        check(show("2.0+Local_1"), expect!["2.0+local.1"]);
        check(show("1.0-"), expect!["invalid"]);
        // Every spelling of the pre-, post- and dev-release labels, in the pattern's order.
        let spellings = [
            "1.0alpha1",
            "1.0.a",
            "1.0-beta.2",
            "1.0b",
            "1.0preview3",
            "1.0_pre",
            "1.0c1",
            "1.0rc",
            "1.0rev2",
            "1.0-r",
            "1.0.post-3",
            "1.0-7",
            "1.0dev",
            "1.0.dev_4",
            "1.0a1-2.dev3",
            "1.0pr1",
        ];
        check(spellings.map(show).join(" "), expect!["1.0a1 1.0a0 1.0b2 1.0b0 1.0rc3 1.0rc0 1.0rc1 1.0rc0 1.0.post2 1.0.post0 1.0.post3 1.0.post7 1.0.dev0 1.0.dev4 1.0a1.post2.dev3 invalid"]);
        let order =
            ["1.0.dev0", "1.0a1", "1.0a1.post1", "1.0b0", "1.0rc1", "1.0", "1.0+abc", "1.0+1", "1.0.post1", "1.1"];
        for w in order.windows(2) {
            assert!(Version::parse(w[0]).unwrap() < Version::parse(w[1]).unwrap(), "{} < {}", w[0], w[1]);
        }
        assert_eq!(Version::parse("3.8").unwrap(), Version::parse("3.8.0").unwrap());
    }

    #[test]
    fn parse_and_print() {
        check(c("^1.2").to_string(), expect![">=1.2,<2.0"]);
        check(c("^0.2.3").to_string(), expect![">=0.2.3,<0.3.0"]);
        check(c("~1.2.3").to_string(), expect![">=1.2.3,<1.3.0"]);
        check(c("~=1.4.5").to_string(), expect![">=1.4.5,<1.5.0"]);
        check(c(">=2.7, !=3.0.*, !=3.1.*").to_string(), expect![">=2.7,<3.0 || >=3.2.dev0"]);
        check(m(">=2.7, !=3.0.*, !=3.1.*").to_string(), expect![">=2.7,<3.0 || >=3.2"]);
        check(c("1.2.*").to_string(), expect!["==1.2.*"]);
        check(c("!=1.2.*").to_string(), expect!["!=1.2.*"]);
        check(c("!=2.0").to_string(), expect!["!=2.0"]);
        check(c(">1,!=2").to_string(), expect![">1,!=2"]);
        check(m("~2.7 || ^3.5").to_string(), expect![">=2.7,<2.8 || >=3.5,<4.0"]);
        check(c(">=1.0 <2.0").to_string(), expect![">=1.0,<2.0"]);
        check(c("*").to_string(), expect!["*"]);
        check(c("==1.0").to_string(), expect!["1.0"]);
        check(c(">=3.8,<3.8").to_string(), expect!["<empty>"]);
    }

    #[test]
    fn algebra() {
        check(m(">=3.6").intersect(&m("<3.9")).to_string(), expect![">=3.6,<3.9"]);
        check(m(">=3.6,<3.8").union(&m(">=3.8,<3.10")).to_string(), expect![">=3.6,<3.10"]);
        check(m("<3.6").union(&m(">=3.8")).to_string(), expect!["<3.6 || >=3.8"]);
        check(m("<3.8").union(&m(">3.8")).to_string(), expect!["!=3.8"]);
        check(Constraint::any().difference(&m("3.8")).to_string(), expect!["!=3.8"]);
        check(m(">=2.7,<2.8 || >=3.5").intersect(&m(">=3.6")).to_string(), expect![">=3.6"]);
        assert!(m(">=3.6").allows_all(&m(">=3.7,<4")));
        assert!(!m(">=3.6").allows_all(&m(">=3.5")));
        assert!(m("<3.6 || >=3.8").allows_any(&m(">=3.9")));
        assert!(c("!=2.0").is_simple());
    }

    #[test]
    fn regions() {
        let show = |cs: &[&str]| {
            let cs: Vec<Constraint> = cs.iter().map(|s| m(s)).collect();
            constraint_regions(&cs).iter().map(range_to_string).collect::<Vec<_>>().join(" | ")
        };
        check(
            show(&[">=3.6", ">=2.7,<3.0.0 || >=3.4.0"]),
            expect!["<2.7 | >=2.7,<3.0.0 | >=3.0.0,<3.4.0 | >=3.4.0,<3.6 | >=3.6"],
        );
        check(show(&["*"]), expect!["*"]);
    }
    /// Each line: `op;constraint;constraint`; the result. Checked against poetry-core 2.5.0.
    #[test]
    fn cases_checked_against_poetry_core() {
        let mut out = String::new();
        for line in CASES.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let parts: Vec<&str> = line.split(';').collect();
            let result = match parts[0] {
                "print" => c(parts[1]).to_string(),
                "mprint" => m(parts[1]).to_string(),
                "and" => c(parts[1]).intersect(&c(parts[2])).to_string(),
                "or" => c(parts[1]).union(&c(parts[2])).to_string(),
                "minus" => c(parts[1]).difference(&c(parts[2])).to_string(),
                "allall" => (if c(parts[1]).allows_all(&c(parts[2])) { "True" } else { "False" }).to_string(),
                "allany" => (if c(parts[1]).allows_any(&c(parts[2])) { "True" } else { "False" }).to_string(),
                other => panic!("{other}"),
            };
            out.push_str(&format!("{line} => {result}\n"));
        }
        expect![[r#"
            print;>=1.2.3,<2.0.0 => >=1.2.3,<2.0.0
            print;~=2.2 => >=2.2,<3.0
            print;~1 => >=1,<2
            print;^0.0.3 => >=0.0.3,<0.0.4
            print;1.0.* => ==1.0.*
            print;!=1.0.* => !=1.0.*
            print;>=1.0,!=1.5,<2.0 => >=1.0,!=1.5,<2.0
            print;<2.0.0a1 => <2.0.0a1
            print;==1.0.post1 => 1.0.post1
            print;>1.0.post1 => >1.0.post1
            print;>=2.7,!=3.0.*,!=3.1.*,!=3.2.*,!=3.3.* => >=2.7,<3.0 || >=3.4.dev0
            print;1.2.3+local.1 => 1.2.3+local.1
            mprint;~2.7 || ^3.5 => >=2.7,<2.8 || >=3.5,<4.0
            mprint;>=3.6,<3.6.4 => >=3.6,<3.6.4
            mprint;!=3.8.* => <3.8 || >=3.9
            and;>=1.0,<2.0;>=1.5 => >=1.5,<2.0
            and;^1.2;<1.0 || >=1.9 => >=1.9,<2.0
            and;!=1.5;>=1.0,<2.0 => >=1.0,!=1.5,<2.0
            and;1.0.*;>=1.0.5 => >=1.0.5,<1.1
            or;>=1.0,<1.5;>=1.5,<2.0 => >=1.0,<1.5 || >=1.5,<2.0
            or;<1.0;>=2.0 => <1.0 || >=2.0
            or;<1.5;>1.5 => <1.5 || >1.5
            or;1.0;1.1 => 1.0 || 1.1
            minus;*;1.5 => !=1.5
            minus;>=1.0,<2.0;>=1.2,<1.4 => >=1.0,<1.2 || >=1.4.dev0,<2.0
            minus;<1.0 || >=2.0;>=2.5 => <1.0 || >=2.0,<2.5
            allall;>=1.0;>=1.2,<1.3 => True
            allall;<2.0 || >=3.0;>=2.5,<2.6 => False
            allany;<2.0 || >=3.0;>=2.5,<3.1 => True
        "#]]
        .assert_eq(&out);
    }

    const CASES: &str = "
        print;>=1.2.3,<2.0.0
        print;~=2.2
        print;~1
        print;^0.0.3
        print;1.0.*
        print;!=1.0.*
        print;>=1.0,!=1.5,<2.0
        print;<2.0.0a1
        print;==1.0.post1
        print;>1.0.post1
        print;>=2.7,!=3.0.*,!=3.1.*,!=3.2.*,!=3.3.*
        print;1.2.3+local.1
        mprint;~2.7 || ^3.5
        mprint;>=3.6,<3.6.4
        mprint;!=3.8.*
        and;>=1.0,<2.0;>=1.5
        and;^1.2;<1.0 || >=1.9
        and;!=1.5;>=1.0,<2.0
        and;1.0.*;>=1.0.5
        or;>=1.0,<1.5;>=1.5,<2.0
        or;<1.0;>=2.0
        or;<1.5;>1.5
        or;1.0;1.1
        minus;*;1.5
        minus;>=1.0,<2.0;>=1.2,<1.4
        minus;<1.0 || >=2.0;>=2.5
        allall;>=1.0;>=1.2,<1.3
        allall;<2.0 || >=3.0;>=2.5,<2.6
        allany;<2.0 || >=3.0;>=2.5,<3.1
    ";
}

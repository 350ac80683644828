//! PEP 508 environment markers with poetry-core's algebra: parsing, union, intersection, the CNF/DNF
//! simplifications, `python_version` vs `python_full_version` merging, and printing exactly as poetry-core
//! prints them (exported requirement lines carry these strings, byte for byte).
//!
//! Pure: no I/O. The structure follows poetry-core's `version/markers.py` and `constraints/generic` closely
//! because the printed result depends on every step (which simplification fires, in which order, and
//! which candidate is the least complex). poetry-core detects re-entrant `intersection`/`union` calls with
//! the same arguments and falls back to another candidate; that is `Recursion` here.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::rc::Rc;

use crate::memo::{hash_of, memo, FastHasher, FastMap, Memo};
use crate::pep440::{self, Constraint as VersionConstraint, Range, Version};

// ---------------------------------------------------------------------------------------------------------
// Generic (string) constraints: sys_platform == "linux", extra != "x", "arm" in platform_machine
// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Ne,
    In,
    NotIn,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::In => "in",
            Op::NotIn => "not in",
        }
    }
    fn invert(self) -> Op {
        match self {
            Op::Eq => Op::Ne,
            Op::Ne => Op::Eq,
            Op::In => Op::NotIn,
            Op::NotIn => Op::In,
        }
    }
}

/// One string comparison (poetry-core's `Constraint`; `extra` marks an `ExtraConstraint`).
#[derive(Debug, Clone)]
pub struct Simple {
    pub value: String,
    pub op: Op,
    extra: bool,
}

impl PartialEq for Simple {
    fn eq(&self, other: &Simple) -> bool {
        self.op == other.op && self.value == other.value
    }
}
impl Eq for Simple {}
impl Hash for Simple {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.op.hash(state);
        self.value.hash(state);
    }
}

/// poetry-core's generic constraints: `AnyConstraint`, `EmptyConstraint`, `Constraint`, `MultiConstraint`
/// (an AND of negative constraints; for `extra`, of `==`/`!=`), `UnionConstraint`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Generic {
    Any,
    Empty,
    Single(Simple),
    Multi(Vec<Simple>, bool),
    Union(Vec<Generic>),
}

impl Simple {
    fn new(value: &str, op: Op, extra: bool) -> Simple {
        Simple { value: value.to_string(), op, extra }
    }

    fn allows(&self, other: &Simple) -> bool {
        match self.op {
            Op::Eq => other.value == self.value,
            Op::Ne => other.value != self.value,
            Op::In => other.value.contains(self.value.as_str()),
            Op::NotIn => !other.value.contains(self.value.as_str()),
        }
    }

    fn invert(&self) -> Simple {
        Simple { value: self.value.clone(), op: self.op.invert(), extra: self.extra }
    }

    fn allows_all(&self, other: &Generic) -> bool {
        match other {
            Generic::Single(o) => {
                if o.op == Op::Eq {
                    return self.allows(o);
                }
                if o.op == Op::In && self.op == Op::In {
                    return o.value.contains(self.value.as_str());
                }
                if o.op == Op::NotIn && matches!(self.op, Op::NotIn | Op::Ne) {
                    return self.value.contains(o.value.as_str());
                }
                self == o
            }
            Generic::Multi(cs, _) => cs.iter().any(|c| self.allows_all(&Generic::Single(c.clone()))),
            Generic::Union(cs) => cs.iter().all(|c| self.allows_all(c)),
            other => other.is_empty(),
        }
    }

    fn allows_any(&self, other: &Generic) -> bool {
        if self.op == Op::Eq {
            return other.allows(self);
        }
        match other {
            Generic::Single(o) => {
                if o.op == Op::Eq {
                    return self.allows(o);
                }
                if o.op == Op::NotIn && self.op == Op::In {
                    return !self.value.contains(o.value.as_str());
                }
                if o.op == Op::In && self.op == Op::NotIn {
                    return !o.value.contains(self.value.as_str());
                }
                true
            }
            Generic::Multi(cs, _) => cs.iter().all(|c| self.allows_any(&Generic::Single(c.clone()))),
            Generic::Union(cs) => cs.iter().any(|c| self.allows_any(c)),
            other => other.is_any(),
        }
    }

    fn intersect(&self, other: &Generic) -> Generic {
        let Generic::Single(o) = other else {
            return other.intersect(&Generic::Single(self.clone()));
        };
        if self.extra {
            if o == self {
                return Generic::Single(self.clone());
            }
            if self.value == o.value && self.op != o.op {
                return Generic::Empty;
            }
            return Generic::Multi(vec![self.clone(), o.clone()], true);
        }
        let this = Generic::Single(self.clone());
        if o == self {
            return this;
        }
        if self.allows_all(other) {
            return other.clone();
        }
        if o.allows_all(&this) {
            return this;
        }
        if !self.allows_any(other) || !o.allows_any(&this) {
            return Generic::Empty;
        }
        Generic::Multi(vec![self.clone(), o.clone()], false)
    }

    fn union(&self, other: &Generic) -> Generic {
        let this = Generic::Single(self.clone());
        let Generic::Single(o) = other else {
            if let Generic::Union(_) = other {
                return Generic::Union(vec![this]).union(other);
            }
            return other.union(&this);
        };
        if self.extra {
            if o == self {
                return this;
            }
            if self.value == o.value && self.op != o.op {
                return Generic::Any;
            }
            return Generic::Union(vec![this, other.clone()]);
        }
        if o == self {
            return this;
        }
        if self.allows_all(other) {
            return this;
        }
        if o.allows_all(&this) {
            return other.clone();
        }
        let ops = |a: Op, b: Op| (self.op == a && o.op == b) || (self.op == b && o.op == a);
        let any = (self.op == Op::Ne && o.op == Op::Ne)
            || ((ops(Op::In, Op::Ne) || ops(Op::In, Op::NotIn))
                && self.op == Op::In
                && o.value.contains(self.value.as_str()))
            || (o.op == Op::In && self.value.contains(o.value.as_str()))
            || self.invert() == *o;
        if any {
            return Generic::Any;
        }
        Generic::Union(vec![this, other.clone()])
    }
}

impl Generic {
    pub fn is_any(&self) -> bool {
        matches!(self, Generic::Any)
    }
    pub fn is_empty(&self) -> bool {
        matches!(self, Generic::Empty)
    }

    fn allows(&self, other: &Simple) -> bool {
        match self {
            Generic::Any => true,
            Generic::Empty => false,
            Generic::Single(s) => s.allows(other),
            Generic::Multi(cs, _) => cs.iter().all(|c| c.allows(other)),
            Generic::Union(cs) => cs.iter().any(|c| c.allows(other)),
        }
    }

    pub fn intersect(&self, other: &Generic) -> Generic {
        match self {
            Generic::Any => other.clone(),
            Generic::Empty => Generic::Empty,
            Generic::Single(s) => s.intersect(other),
            Generic::Multi(cs, extra) => {
                if let Generic::Multi(os, _) = other {
                    if *extra {
                        let eq_values: Vec<&String> =
                            cs.iter().chain(os.iter()).filter(|c| c.op == Op::Eq).map(|c| &c.value).collect();
                        if cs.iter().chain(os.iter()).any(|c| c.op == Op::Ne && eq_values.contains(&&c.value)) {
                            return Generic::Empty;
                        }
                    }
                    let mut union = cs.clone();
                    for c in os {
                        if !cs.contains(c) {
                            union.push(c.clone());
                        }
                    }
                    return Generic::Multi(union, *extra);
                }
                let Generic::Single(o) = other else {
                    return other.intersect(self);
                };
                if cs.contains(o) {
                    return self.clone();
                }
                if cs.iter().any(|c| c.value == o.value) {
                    return Generic::Empty;
                }
                if o.op == Op::Eq && !*extra {
                    return other.clone();
                }
                let mut all = cs.clone();
                all.push(o.clone());
                Generic::Multi(all, *extra)
            }
            Generic::Union(cs) => {
                if other.is_any() {
                    return self.clone();
                }
                if other.is_empty() {
                    return other.clone();
                }
                if let Generic::Union(os) = other {
                    if same_set(os, cs) {
                        return self.clone();
                    }
                }
                if let Generic::Single(o) = other {
                    if o.extra && cs.contains(other) {
                        return other.clone();
                    }
                }
                let other = match other {
                    Generic::Single(_) => Generic::Union(vec![other.clone()]),
                    o => o.clone(),
                };
                let mut new: Vec<Generic> = Vec::new();
                let mut seen_multi: Vec<Vec<Simple>> = Vec::new();
                let mut add = |c: Generic, new: &mut Vec<Generic>| {
                    if c.is_empty() || new.contains(&c) {
                        return;
                    }
                    if let Generic::Multi(ms, _) = &c {
                        if seen_multi.iter().any(|s| same_set(s, ms)) {
                            return;
                        }
                        seen_multi.push(ms.clone());
                    }
                    new.push(c);
                };
                match &other {
                    Generic::Union(os) => {
                        if is_subset(cs, os) {
                            return self.clone();
                        }
                        if is_subset(os, cs) {
                            if os.len() == 1 {
                                return os[0].clone();
                            }
                            return other.clone();
                        }
                        for c in cs {
                            for o in os {
                                add(c.intersect(o), &mut new);
                            }
                        }
                    }
                    Generic::Multi(os, _) => {
                        for c in cs {
                            let mut intersection = c.clone();
                            for o in os {
                                intersection = intersection.intersect(&Generic::Single(o.clone()));
                            }
                            add(intersection, &mut new);
                        }
                    }
                    _ => unreachable!(),
                }
                match new.len() {
                    0 => Generic::Empty,
                    1 => new.pop().unwrap(),
                    _ => Generic::Union(new),
                }
            }
        }
    }

    pub fn union(&self, other: &Generic) -> Generic {
        match self {
            Generic::Any => Generic::Any,
            Generic::Empty => other.clone(),
            Generic::Single(s) => s.union(other),
            Generic::Multi(cs, extra) => {
                if *extra {
                    if let Generic::Multi(os, _) = other {
                        if is_subset(cs, os) {
                            return self.clone();
                        }
                        if is_subset(os, cs) {
                            return other.clone();
                        }
                        return Generic::Union(vec![self.clone(), other.clone()]);
                    }
                    if let Generic::Single(o) = other {
                        if cs.contains(o) {
                            return other.clone();
                        }
                        let items = if cs.len() == 2 && cs.iter().any(|c| c.value == o.value) {
                            let mut items: Vec<Generic> =
                                cs.iter().filter(|c| c.value != o.value).map(|c| Generic::Single(c.clone())).collect();
                            items.push(other.clone());
                            items
                        } else {
                            vec![self.clone(), other.clone()]
                        };
                        return Generic::Union(items);
                    }
                }
                if let Generic::Multi(os, _) = other {
                    let common: Vec<Simple> = cs.iter().filter(|c| os.contains(c)).cloned().collect();
                    return match common.len() {
                        0 => Generic::Any,
                        1 => Generic::Single(common[0].clone()),
                        _ => Generic::Multi(common, *extra),
                    };
                }
                let Generic::Single(o) = other else {
                    return other.union(self);
                };
                if cs.contains(o) {
                    return other.clone();
                }
                if !cs.iter().any(|c| c.value == o.value) {
                    if o.op == Op::Ne {
                        return Generic::Any;
                    }
                    return self.clone();
                }
                let rest: Vec<Simple> = cs.iter().filter(|c| c.value != o.value).cloned().collect();
                if rest.len() == 1 {
                    return Generic::Single(rest[0].clone());
                }
                Generic::Multi(rest, *extra)
            }
            Generic::Union(cs) => {
                if other.is_any() {
                    return other.clone();
                }
                if other.is_empty() || other == self {
                    return self.clone();
                }
                let other = match other {
                    Generic::Single(_) => Generic::Union(vec![other.clone()]),
                    o => o.clone(),
                };
                let new: Vec<Generic> = match &other {
                    Generic::Union(os) => {
                        let mut ours_new: Vec<Generic> = Vec::new();
                        let mut theirs_new: Vec<Generic> = Vec::new();
                        let mut merged: Vec<Generic> = Vec::new();
                        for theirs in os {
                            for ours in cs {
                                let union = ours.union(theirs);
                                if union.is_any() {
                                    return Generic::Any;
                                }
                                if let Generic::Single(_) = union {
                                    if &union == ours {
                                        if !ours_new.contains(&union) {
                                            ours_new.push(union);
                                        }
                                    } else if &union == theirs {
                                        if !theirs_new.contains(&union) {
                                            theirs_new.push(theirs.clone());
                                        }
                                    } else if !merged.contains(&union) {
                                        merged.push(union);
                                    }
                                } else {
                                    if !ours_new.contains(ours) {
                                        ours_new.push(ours.clone());
                                    }
                                    if !theirs_new.contains(theirs) {
                                        theirs_new.push(theirs.clone());
                                    }
                                }
                            }
                        }
                        let mut new = ours_new;
                        for c in theirs_new.into_iter().chain(merged) {
                            if !new.contains(&c) {
                                new.push(c);
                            }
                        }
                        new
                    }
                    Generic::Multi(os, _) => {
                        if cs.iter().any(|c| matches!(c, Generic::Single(s) if os.contains(s))) {
                            return self.clone();
                        }
                        let simple: Vec<&Simple> =
                            cs.iter().filter_map(|c| if let Generic::Single(s) = c { Some(s) } else { None }).collect();
                        let mut simplified = false;
                        let mut theirs_new = Vec::new();
                        for t in os {
                            let tg = Generic::Single(t.clone());
                            if simple.iter().any(|c| c.union(&tg).is_any()) {
                                simplified = true;
                            } else {
                                theirs_new.push(tg);
                            }
                        }
                        if simplified {
                            if theirs_new.is_empty() {
                                return Generic::Any;
                            }
                            return self.union(&Generic::Union(theirs_new));
                        }
                        let mut new = cs.clone();
                        new.push(other.clone());
                        new
                    }
                    _ => unreachable!(),
                };
                if new.len() == 1 {
                    return new.into_iter().next().unwrap();
                }
                Generic::Union(new)
            }
        }
    }
}

impl fmt::Display for Generic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Generic::Any => f.write_str("*"),
            Generic::Empty => Ok(()),
            Generic::Single(s) => fmt_simple(s, f),
            Generic::Multi(cs, _) => {
                for (i, c) in cs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    fmt_simple(c, f)?;
                }
                Ok(())
            }
            Generic::Union(cs) => {
                for (i, c) in cs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" || ")?;
                    }
                    write!(f, "{c}")?;
                }
                Ok(())
            }
        }
    }
}

fn fmt_simple(s: &Simple, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match s.op {
        Op::In | Op::NotIn => write!(f, "'{}' {}", s.value, s.op.as_str()),
        Op::Eq => f.write_str(&s.value),
        Op::Ne => write!(f, "!={}", s.value),
    }
}

fn is_subset<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    a.iter().all(|x| b.contains(x))
}

fn same_set<T: PartialEq>(a: &[T], b: &[T]) -> bool {
    is_subset(a, b) && is_subset(b, a)
}

/// poetry-core's generic constraint parser (`parse_constraint` / `parse_extra_constraint`).
fn parse_generic(constraints: &str, extra: bool) -> Result<Generic, String> {
    if constraints == "*" {
        return Ok(Generic::Any);
    }
    let mut or_groups = Vec::new();
    for or_constraint in pep440::split_or(constraints.trim()) {
        let and_constraints = split_comma(or_constraint);
        let mut constraint = Generic::Single(parse_generic_single(and_constraints[0], extra)?);
        for c in &and_constraints[1..] {
            constraint = constraint.intersect(&Generic::Single(parse_generic_single(c, extra)?));
        }
        or_groups.push(constraint);
    }
    if or_groups.len() == 1 {
        return Ok(or_groups.pop().unwrap());
    }
    Ok(Generic::Union(or_groups))
}

/// `re.split(r"\s*,\s*", s)`.
fn split_comma(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(',') {
        out.push(rest[..i].trim_end());
        rest = rest[i + 1..].trim_start();
    }
    out.push(rest);
    out
}

/// `STR_CMP_CONSTRAINT`: `'value' in`, `"value" not in`.
fn str_cmp(s: &str) -> Option<(String, Op)> {
    let quote = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = &s[1..];
    // `(?P<value>.+?)\1\s*(?P<op>(not\sin|in))$` (case-insensitive): the shortest value that works.
    for (i, c) in body.char_indices() {
        if c != quote || i == 0 {
            continue;
        }
        let after = body[i + 1..].trim_start();
        let lower = after.to_ascii_lowercase();
        let op = if lower == "in" {
            Op::In
        } else if lower.len() == 6
            && lower.starts_with("not")
            && lower.ends_with("in")
            && lower.as_bytes()[3].is_ascii_whitespace()
        {
            Op::NotIn
        } else {
            continue;
        };
        if body[..i].contains('\n') {
            return None;
        }
        return Some((body[..i].to_string(), op));
    }
    None
}

fn parse_generic_single(constraint: &str, extra: bool) -> Result<Simple, String> {
    if let Some((value, op)) = str_cmp(constraint) {
        if extra && !matches!(op, Op::Eq | Op::Ne) {
            return Err(format!(
                "Only the operators \"==\" and \"!=\" are supported for extra constraints: {constraint}"
            ));
        }
        return Ok(Simple::new(value.trim(), op, extra));
    }
    let (op, rest) = if let Some(r) = constraint.strip_prefix("!=") {
        (Op::Ne, r)
    } else if let Some(r) = constraint.strip_prefix("===").or_else(|| constraint.strip_prefix("==")) {
        (Op::Eq, r)
    } else if let Some(r) = constraint.strip_prefix('=') {
        (Op::Eq, r)
    } else {
        (Op::Eq, constraint)
    };
    let value = rest.trim();
    if value.is_empty() || (extra && value.contains(char::is_whitespace)) {
        return Err(format!("Could not parse version constraint: {constraint}"));
    }
    Ok(Simple::new(value, op, extra))
}

// ---------------------------------------------------------------------------------------------------------
// Markers
// ---------------------------------------------------------------------------------------------------------

/// A re-entrant `intersection`/`union` with the same arguments (poetry-core raises `RecursionError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recursion;

pub type MResult<T = Marker> = Result<T, Recursion>;

const PYTHON_VERSION: &str = "python_version";
const PYTHON_FULL_VERSION: &str = "python_full_version";

fn is_python(name: &str) -> bool {
    name == PYTHON_VERSION || name == PYTHON_FULL_VERSION
}

/// The constraint of a single marker: a version constraint for `python_version`, `python_full_version`
/// and (usually) `platform_release`, a string constraint otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MarkerConstraint {
    Version(VersionConstraint),
    Generic(Generic),
}

impl MarkerConstraint {
    fn is_any(&self) -> bool {
        match self {
            MarkerConstraint::Version(c) => c.is_any(),
            MarkerConstraint::Generic(c) => c.is_any(),
        }
    }
    fn is_empty(&self) -> bool {
        match self {
            MarkerConstraint::Version(c) => c.is_empty(),
            MarkerConstraint::Generic(c) => c.is_empty(),
        }
    }
}

impl fmt::Display for MarkerConstraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MarkerConstraint::Version(c) => write!(f, "{c}"),
            MarkerConstraint::Generic(c) => write!(f, "{c}"),
        }
    }
}

/// `name op "value"` (or `"value" in name`), compared by (name, op, value) like poetry-core.
#[derive(Debug)]
pub struct SingleMarker {
    pub name: String,
    pub op: String,
    pub value: String,
    swapped: bool,
    pub constraint: MarkerConstraint,
    hash: u64,
}

/// `AtomicMultiMarker` / `AtomicMarkerUnion`: several comparisons of one name (`sys_platform != "a" and
/// sys_platform != "b"`), held as one generic constraint.
#[derive(Debug)]
pub struct Atomic {
    pub name: String,
    pub constraint: Generic,
    hash: u64,
}

/// The children of an AND (`Multi`) or OR (`Union`) marker, with their hash and complexity.
#[derive(Debug)]
pub struct Node {
    pub items: Vec<Marker>,
    hash: u64,
    complexity: (usize, usize),
}

#[derive(Debug, Clone)]
pub enum Marker {
    Any,
    Empty,
    Single(Rc<SingleMarker>),
    AtomicMulti(Rc<Atomic>),
    AtomicUnion(Rc<Atomic>),
    Multi(Rc<Node>),
    Union(Rc<Node>),
}

impl PartialEq for Marker {
    fn eq(&self, other: &Marker) -> bool {
        match (self, other) {
            (Marker::Any, Marker::Any) | (Marker::Empty, Marker::Empty) => true,
            (Marker::Single(a), Marker::Single(b)) => {
                Rc::ptr_eq(a, b) || (a.hash == b.hash && a.name == b.name && a.op == b.op && a.value == b.value)
            }
            (Marker::AtomicMulti(a), Marker::AtomicMulti(b)) | (Marker::AtomicUnion(a), Marker::AtomicUnion(b)) => {
                Rc::ptr_eq(a, b) || (a.hash == b.hash && a.name == b.name && a.constraint == b.constraint)
            }
            (Marker::Multi(a), Marker::Multi(b)) | (Marker::Union(a), Marker::Union(b)) => {
                Rc::ptr_eq(a, b) || (a.hash == b.hash && a.items == b.items)
            }
            _ => false,
        }
    }
}
impl Eq for Marker {}

impl Hash for Marker {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash_value());
    }
}

impl Marker {
    fn hash_value(&self) -> u64 {
        match self {
            Marker::Any => 1,
            Marker::Empty => 2,
            Marker::Single(s) => s.hash,
            Marker::AtomicMulti(a) => a.hash ^ 0x5555,
            Marker::AtomicUnion(a) => a.hash ^ 0xaaaa,
            Marker::Multi(n) => n.hash,
            Marker::Union(n) => n.hash,
        }
    }

    pub fn is_any(&self) -> bool {
        matches!(self, Marker::Any)
    }
    pub fn is_empty(&self) -> bool {
        matches!(self, Marker::Empty)
    }
    fn is_single_like(&self) -> bool {
        matches!(self, Marker::Single(_) | Marker::AtomicMulti(_) | Marker::AtomicUnion(_))
    }
    fn name(&self) -> Option<&str> {
        match self {
            Marker::Single(s) => Some(&s.name),
            Marker::AtomicMulti(a) | Marker::AtomicUnion(a) => Some(&a.name),
            _ => None,
        }
    }
    /// The children of a `Multi` or `Union`.
    pub fn items(&self) -> &[Marker] {
        match self {
            Marker::Multi(n) | Marker::Union(n) => &n.items,
            _ => &[],
        }
    }

    pub fn complexity(&self) -> (usize, usize) {
        match self {
            Marker::Any | Marker::Empty | Marker::Single(_) => (1, 1),
            Marker::AtomicMulti(a) | Marker::AtomicUnion(a) => (generic_len(&a.constraint), 1),
            Marker::Multi(n) | Marker::Union(n) => n.complexity,
        }
    }

    fn node(items: Vec<Marker>, salt: u64) -> Rc<Node> {
        let mut h = FastHasher::default();
        salt.hash(&mut h);
        let mut complexity = (0, 0);
        for m in &items {
            h.write_u64(m.hash_value());
            let c = m.complexity();
            complexity = (complexity.0 + c.0, complexity.1 + c.1);
        }
        Rc::new(Node { items, hash: h.finish(), complexity })
    }

    /// `MultiMarker(*markers)`: flattens nested ANDs and drops duplicates, nothing else.
    pub fn multi_raw(markers: &[Marker]) -> Marker {
        Marker::Multi(Marker::node(flatten(markers, true), 0x4d))
    }

    /// `MarkerUnion(*markers)`: flattens nested ORs and drops duplicates, nothing else.
    pub fn union_raw(markers: &[Marker]) -> Marker {
        Marker::Union(Marker::node(flatten(markers, false), 0x55))
    }

    fn atomic_multi(name: &str, constraint: Generic) -> Marker {
        let hash = hash_of(&(name, &constraint));
        Marker::AtomicMulti(Rc::new(Atomic { name: name.to_string(), constraint, hash }))
    }

    fn atomic_union(name: &str, constraint: Generic) -> Marker {
        let hash = hash_of(&(name, &constraint));
        Marker::AtomicUnion(Rc::new(Atomic { name: name.to_string(), constraint, hash }))
    }

    pub fn intersect(&self, other: &Marker) -> MResult {
        match self {
            Marker::Any => Ok(other.clone()),
            Marker::Empty => Ok(Marker::Empty),
            Marker::Single(_) | Marker::AtomicMulti(_) | Marker::AtomicUnion(_) => {
                if other.is_single_like() {
                    if let Some(merged) = merge_single_markers(self, other, true) {
                        return Ok(merged);
                    }
                    return Ok(Marker::multi_raw(&[self.clone(), other.clone()]));
                }
                other.intersect(self)
            }
            Marker::Multi(_) | Marker::Union(_) => intersection(&[self.clone(), other.clone()]),
        }
    }

    pub fn union(&self, other: &Marker) -> MResult {
        match self {
            Marker::Any => Ok(Marker::Any),
            Marker::Empty => Ok(other.clone()),
            Marker::Single(_) | Marker::AtomicMulti(_) | Marker::AtomicUnion(_) => {
                if other.is_single_like() {
                    if let Some(merged) = merge_single_markers(self, other, false) {
                        return Ok(merged);
                    }
                    return Ok(Marker::union_raw(&[self.clone(), other.clone()]));
                }
                other.union(self)
            }
            Marker::Multi(_) | Marker::Union(_) => union(&[self.clone(), other.clone()]),
        }
    }

    /// Keeps only the comparisons of the given names (poetry-core's `only`).
    pub fn only(&self, names: &[&str]) -> MResult {
        match self {
            Marker::Any | Marker::Empty => Ok(self.clone()),
            Marker::Single(_) | Marker::AtomicMulti(_) | Marker::AtomicUnion(_) => {
                if names.contains(&self.name().unwrap()) {
                    Ok(self.clone())
                } else {
                    Ok(Marker::Any)
                }
            }
            Marker::Multi(n) => {
                let items = n.items.iter().map(|m| m.only(names)).collect::<MResult<Vec<_>>>()?;
                multi_of(&items)
            }
            Marker::Union(n) => {
                let items = n.items.iter().map(|m| m.only(names)).collect::<MResult<Vec<_>>>()?;
                union_of(&items)
            }
        }
    }

    /// Drops the comparisons of `name` (poetry-core's `exclude`).
    pub fn exclude(&self, name: &str) -> MResult {
        match self {
            Marker::Any | Marker::Empty => Ok(self.clone()),
            Marker::Single(_) | Marker::AtomicMulti(_) | Marker::AtomicUnion(_) => {
                if self.name() == Some(name) {
                    Ok(Marker::Any)
                } else {
                    Ok(self.clone())
                }
            }
            Marker::Multi(n) => {
                let mut new = Vec::new();
                for m in &n.items {
                    if m.is_single_like() && m.name() == Some(name) {
                        continue;
                    }
                    let marker = m.exclude(name)?;
                    if !marker.is_empty() {
                        new.push(marker);
                    }
                }
                intersection(&new)
            }
            Marker::Union(n) => {
                let mut new = Vec::new();
                for m in &n.items {
                    if m.is_single_like() && m.name() == Some(name) {
                        return Ok(Marker::Any);
                    }
                    new.push(m.exclude(name)?);
                }
                union(&new)
            }
        }
    }

    pub fn without_extras(&self) -> MResult {
        self.exclude("extra")
    }

    /// Evaluates the `extra` comparisons for the given (normalized) extras and simplifies the rest
    /// (poetry-core's `apply({"extra": extras})`).
    pub fn apply_extras(&self, extras: &[String]) -> MResult {
        match self {
            Marker::Any | Marker::Empty => Ok(self.clone()),
            Marker::Single(_) | Marker::AtomicMulti(_) | Marker::AtomicUnion(_) => {
                if self.name() != Some("extra") {
                    return Ok(self.clone());
                }
                Ok(if self.validate_extras(extras) { Marker::Any } else { Marker::Empty })
            }
            Marker::Multi(n) => {
                let items = n.items.iter().map(|m| m.apply_extras(extras)).collect::<MResult<Vec<_>>>()?;
                multi_of(&items)
            }
            Marker::Union(n) => {
                let items = n.items.iter().map(|m| m.apply_extras(extras)).collect::<MResult<Vec<_>>>()?;
                union_of(&items)
            }
        }
    }

    fn validate_extras(&self, extras: &[String]) -> bool {
        let check = |c: &Simple| -> bool {
            let value = canonicalize_name(&c.value);
            let active = extras.iter().any(|e| canonicalize_name(e) == value);
            match c.op {
                Op::Eq => active,
                Op::Ne => !active,
                Op::In | Op::NotIn => true,
            }
        };
        match self {
            Marker::Single(s) => match &s.constraint {
                MarkerConstraint::Generic(Generic::Single(c)) => check(c),
                _ => true,
            },
            Marker::AtomicMulti(a) => match &a.constraint {
                Generic::Multi(cs, _) => cs.iter().all(check),
                _ => true,
            },
            Marker::AtomicUnion(a) => match &a.constraint {
                Generic::Union(cs) => cs.iter().any(|c| match c {
                    Generic::Single(s) => check(s),
                    _ => true,
                }),
                _ => true,
            },
            _ => true,
        }
    }
}

fn generic_len(c: &Generic) -> usize {
    match c {
        Generic::Multi(cs, _) => cs.len(),
        Generic::Union(cs) => cs.len(),
        _ => 1,
    }
}

fn flatten(markers: &[Marker], multi: bool) -> Vec<Marker> {
    let mut out: Vec<Marker> = Vec::with_capacity(markers.len());
    for m in markers {
        match (m, multi) {
            (Marker::Multi(n), true) | (Marker::Union(n), false) => {
                for inner in flatten(&n.items, multi) {
                    if !out.contains(&inner) {
                        out.push(inner);
                    }
                }
            }
            _ => {
                if !out.contains(m) {
                    out.push(m.clone());
                }
            }
        }
    }
    out
}

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Marker::Any => Ok(()),
            Marker::Empty => f.write_str("<empty>"),
            Marker::Single(s) => {
                if s.swapped {
                    write!(f, "\"{}\" {} {}", s.value, s.op, s.name)
                } else {
                    write!(f, "{} {} \"{}\"", s.name, s.op, s.value)
                }
            }
            Marker::AtomicMulti(a) | Marker::AtomicUnion(a) => {
                let (cs, glue): (Vec<&Simple>, &str) = match &a.constraint {
                    Generic::Multi(cs, _) => (cs.iter().collect(), " and "),
                    Generic::Union(cs) => (
                        cs.iter().filter_map(|c| if let Generic::Single(s) = c { Some(s) } else { None }).collect(),
                        " or ",
                    ),
                    _ => (vec![], ""),
                };
                for (i, c) in cs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(glue)?;
                    }
                    write!(f, "{} {} \"{}\"", a.name, c.op.as_str(), c.value)?;
                }
                Ok(())
            }
            Marker::Multi(n) => {
                for (i, m) in n.items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" and ")?;
                    }
                    match m {
                        Marker::Single(_) | Marker::Multi(_) | Marker::AtomicMulti(_) => write!(f, "{m}")?,
                        _ => write!(f, "({m})")?,
                    }
                }
                Ok(())
            }
            Marker::Union(n) => {
                for (i, m) in n.items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" or ")?;
                    }
                    write!(f, "{m}")?;
                }
                Ok(())
            }
        }
    }
}

/// PEP 503 normalization: lowercase, runs of `-`, `_`, `.` become one `-`.
pub fn canonicalize_name(name: &str) -> String {
    // Most names are canonical already: one copy, no pushing char by char.
    let b = name.as_bytes();
    let mut canonical = true;
    let mut i = 0;
    while i < b.len() && canonical {
        let c = b[i];
        canonical = c.is_ascii_lowercase() || c.is_ascii_digit() || (c == b'-' && (i == 0 || b[i - 1] != b'-'));
        i += 1;
    }
    if canonical {
        return name.to_string();
    }
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_run {
                out.push('-');
                in_run = true;
            }
        } else {
            out.push(c.to_ascii_lowercase());
            in_run = false;
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// Single markers
// ------------------------------------------------------------------------------------------------

fn alias(name: &str) -> &str {
    match name {
        "os.name" => "os_name",
        "sys.platform" => "sys_platform",
        "platform.version" => "platform_version",
        "platform.machine" => "platform_machine",
        "platform.python_implementation" | "python_implementation" => "platform_python_implementation",
        other => other,
    }
}

/// `re.split(r"[ ,|]+", s)`: runs of separators split once; a leading or trailing run gives an empty part.
fn split_values(s: &str) -> Vec<&str> {
    let is_sep = |c: char| matches!(c, ' ' | ',' | '|');
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if is_sep(c) {
            out.push(&s[start..i]);
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if !is_sep(d) {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            start = end;
        }
    }
    out.push(&s[start..]);
    out
}

impl SingleMarker {
    /// poetry-core's `SingleMarker(name, constraint_string, swapped_name_value)`.
    fn parse(name: &str, constraint: &str, swapped: bool) -> Result<SingleMarker, String> {
        let invalid = || format!("Invalid marker for '{name}': {constraint}");
        let (op, mut value) = if swapped {
            let (value, op) = str_cmp(constraint).ok_or_else(invalid)?;
            (op.as_str().to_string(), value)
        } else {
            split_operator(constraint).ok_or_else(invalid)?
        };
        let mut constraint_string = constraint.to_string();
        let version_like = matches!(name, PYTHON_VERSION | PYTHON_FULL_VERSION | "platform_release");
        let parsed = if swapped && !is_python(name) {
            MarkerConstraint::Generic(parse_generic(&constraint_string, name == "extra")?)
        } else if version_like {
            if op == "in" || op == "not in" {
                let mut versions = Vec::new();
                for v in split_values(&value) {
                    let mut split: Vec<&str> = v.split('.').collect();
                    let op_ = if split.len() == 1 || split.len() == 2 {
                        split.push("*");
                        if op == "in" {
                            ""
                        } else {
                            "!="
                        }
                    } else if op == "in" {
                        "=="
                    } else {
                        "!="
                    };
                    versions.push(format!("{op_}{}", split.join(".")));
                }
                constraint_string = versions.join(if op == "in" { " || " } else { ", " });
            } else if name == PYTHON_FULL_VERSION && !swapped {
                let precision = value.matches('.').count() + 1;
                if precision < 3 {
                    let suffix = ".0".repeat(3 - precision);
                    value.push_str(&suffix);
                    constraint_string.push_str(&suffix);
                }
            }
            let c = if name == "platform_release" {
                pep440::parse_release_constraint(&constraint_string)
            } else {
                pep440::parse_marker_constraint(&constraint_string)
            };
            MarkerConstraint::Version(c.ok_or_else(invalid)?)
        } else {
            if op == "in" || op == "not in" {
                let (op_, glue) = if op == "in" { ("==", " || ") } else { ("!=", ", ") };
                constraint_string =
                    split_values(&value).iter().map(|v| format!("{op_} {v}")).collect::<Vec<_>>().join(glue);
            }
            MarkerConstraint::Generic(parse_generic(&constraint_string, name == "extra").map_err(|_| invalid())?)
        };
        let name = alias(name).to_string();
        let hash = hash_of(&(&name, &op, &value));
        Ok(SingleMarker { name, op, value, swapped, constraint: parsed, hash })
    }

    fn marker(name: &str, constraint: &str, swapped: bool) -> Result<Marker, String> {
        Ok(Marker::Single(Rc::new(SingleMarker::parse(name, constraint, swapped)?)))
    }

    /// `SingleMarker(name, constraint_object)`: poetry-core prints the constraint and parses it again.
    fn from_constraint(name: &str, constraint: &MarkerConstraint) -> Marker {
        SingleMarker::marker(name, &constraint.to_string(), false)
            .unwrap_or_else(|e| panic!("cannot re-parse a marker constraint: {e}"))
    }
}

/// `(?i)^(?P<op>~=|!=|>=?|<=?|==?=?|not in |in )?\s*(?P<value>.+)$`
fn split_operator(s: &str) -> Option<(String, String)> {
    let lower = s.to_ascii_lowercase();
    let ops = ["~=", "!=", ">=", ">", "<=", "<", "===", "==", "=", "not in ", "in "];
    let mut op = "==";
    let mut rest = s;
    for candidate in ops {
        if lower.starts_with(candidate) {
            op = candidate.trim_end();
            rest = &s[candidate.len()..];
            break;
        }
    }
    let value = rest.trim_start_matches(|c: char| c.is_whitespace());
    if value.is_empty() || value.contains('\n') {
        return None;
    }
    Some((op.to_string(), value.to_string()))
}

// ------------------------------------------------------------------------------------------------
// Parsing marker expressions
// ------------------------------------------------------------------------------------------------

const MARKER_NAMES: &[&str] = &[
    "implementation_version",
    "platform_python_implementation",
    "implementation_name",
    "python_full_version",
    "platform_release",
    "platform_version",
    "platform_machine",
    "platform_system",
    "python_version",
    "sys_platform",
    "os_name",
    "os.name",
    "sys.platform",
    "platform.version",
    "platform.machine",
    "platform.python_implementation",
    "python_implementation",
    "extra",
];

/// Parses a PEP 508 marker expression (cached; poetry-core's `parse_marker`).
pub fn parse_marker(text: &str) -> Result<Marker, String> {
    if let Some(m) = PARSE_CACHE.with(|c| c.borrow().get(text).cloned()) {
        return Ok(m);
    }
    let marker = parse_marker_uncached(text)?;
    PARSE_CACHE.with(|c| c.borrow_mut().insert(text.to_string(), marker.clone()));
    Ok(marker)
}

fn parse_marker_uncached(text: &str) -> Result<Marker, String> {
    if text == "<empty>" {
        return Ok(Marker::Empty);
    }
    if text.is_empty() || text == "*" {
        return Ok(Marker::Any);
    }
    let mut parser = MarkerParser { s: text, pos: 0 };
    let groups = parser.expression()?;
    parser.skip_ws();
    if parser.pos != text.len() {
        return Err(parser.error());
    }
    let subs: Vec<Marker> = groups.into_iter().map(group_marker).collect();
    union(&subs).map_err(|_| format!("marker too complex: {text}"))
}

fn group_marker(group: Vec<Marker>) -> Marker {
    if group.len() == 1 {
        group.into_iter().next().unwrap()
    } else {
        Marker::multi_raw(&group)
    }
}

struct MarkerParser<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> MarkerParser<'a> {
    fn error(&self) -> String {
        format!("invalid marker at column {}: {}", self.pos + 1, self.s)
    }
    fn skip_ws(&mut self) {
        while self.s[self.pos..].starts_with([' ', '\t']) {
            self.pos += 1;
        }
    }
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    /// `marker: _atom (BOOL_OP _atom)*`, as groups of ANDed markers separated by `or`.
    fn expression(&mut self) -> Result<Vec<Vec<Marker>>, String> {
        let mut groups: Vec<Vec<Marker>> = vec![vec![]];
        loop {
            self.skip_ws();
            let atom = if self.rest().starts_with('(') {
                self.pos += 1;
                let inner = self.expression()?;
                self.skip_ws();
                if !self.rest().starts_with(')') {
                    return Err(self.error());
                }
                self.pos += 1;
                let subs: Vec<Marker> = inner.into_iter().map(group_marker).collect();
                Marker::union_raw(&subs)
            } else {
                self.item()?
            };
            groups.last_mut().unwrap().push(atom);
            self.skip_ws();
            let rest = self.rest();
            if rest.starts_with("and") {
                self.pos += 3;
            } else if rest.starts_with("or") {
                self.pos += 2;
                groups.push(vec![]);
            } else {
                return Ok(groups);
            }
        }
    }

    fn name(&mut self) -> Option<&'static str> {
        let rest = self.rest();
        let found = MARKER_NAMES.iter().filter(|n| rest.starts_with(*n)).max_by_key(|n| n.len())?;
        self.pos += found.len();
        Some(found)
    }

    fn string(&mut self) -> Option<(String, bool)> {
        let rest = self.rest();
        let quote = rest.chars().next()?;
        if quote == '\'' {
            let end = rest[1..].find('\'')?;
            self.pos += end + 2;
            return Some((rest[1..end + 1].to_string(), true));
        }
        if quote == '"' {
            let bytes = rest.as_bytes();
            let mut i = 1;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'"' => {
                        self.pos += i + 1;
                        return Some((rest[1..i].to_string(), true));
                    }
                    b'\n' => return None,
                    _ => i += 1,
                }
            }
        }
        None
    }

    fn op(&mut self) -> Option<&'static str> {
        let rest = self.rest();
        let ops = ["===", "==", ">=", "<=", ">", "<", "!=", "~=", "not in", "in"];
        let op = ops.iter().find(|op| rest.starts_with(*op))?;
        self.pos += op.len();
        Some(op)
    }

    /// `item: (MARKER_NAME MARKER_OP _marker_value) | (_marker_value MARKER_OP MARKER_NAME)`
    fn item(&mut self) -> Result<Marker, String> {
        if let Some(name) = self.name() {
            self.skip_ws();
            let op = self.op().ok_or_else(|| self.error())?;
            self.skip_ws();
            let (value, _) = self.string().ok_or_else(|| self.error())?;
            return SingleMarker::marker(name, &format!("{op} {value}"), false);
        }
        let (value, _) = self.string().ok_or_else(|| self.error())?;
        self.skip_ws();
        let op = self.op().ok_or_else(|| self.error())?;
        self.skip_ws();
        let name = self.name().ok_or_else(|| self.error())?;
        SingleMarker::marker(name, &format!("\"{value}\" {op}"), true)
    }
}

// ------------------------------------------------------------------------------------------------
// Simplifying constructors, union and intersection
// ------------------------------------------------------------------------------------------------

thread_local! {
    static PARSE_CACHE: Memo<FastMap<String, Marker>> = memo(FastMap::default());
    static CNF_CACHE: Memo<FastMap<Marker, Marker>> = memo(FastMap::default());
    static DNF_CACHE: Memo<FastMap<Marker, Marker>> = memo(FastMap::default());
    static INTERSECTION_CALLS: Memo<Vec<Vec<Marker>>> = const { memo(Vec::new()) };
    static UNION_CALLS: Memo<Vec<Vec<Marker>>> = const { memo(Vec::new()) };
    /// Results of `intersection` and `union` called from outside the algebra (see `memoized`).
    static OUTER_INTERSECTIONS: Memo<FastMap<Vec<Marker>, Marker>> = memo(FastMap::default());
    static OUTER_UNIONS: Memo<FastMap<Vec<Marker>, Marker>> = memo(FastMap::default());
    /// How many times a `Recursion` was raised.
    static RECURSIONS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// `MultiMarker.of`: an AND with the easy simplifications applied.
pub fn multi_of(markers: &[Marker]) -> MResult {
    let mut new: Vec<Marker> = flatten(markers, true);
    let mut old: Vec<Marker> = Vec::new();
    while old != new {
        old = std::mem::take(&mut new);
        for marker in &old {
            if new.contains(marker) || marker.is_any() {
                continue;
            }
            let mut intersected = false;
            for slot in new.iter_mut() {
                let mark = slot.clone();
                let mut is_one_union = false;
                let mut simplified = None;
                if let Marker::Union(_) = mark {
                    is_one_union = true;
                    simplified = intersect_simplify(&mark, marker)?;
                } else if let Marker::Union(_) = marker {
                    is_one_union = true;
                    simplified = intersect_simplify(marker, &mark)?;
                }
                if let Some(s) = simplified {
                    *slot = s;
                    intersected = true;
                    break;
                }
                if !is_one_union && mark.is_single_like() {
                    let merged = mark.intersect(marker)?;
                    if merged.is_empty() {
                        return Ok(Marker::Empty);
                    }
                    if merged.is_single_like() {
                        *slot = merged;
                        intersected = true;
                        break;
                    }
                }
            }
            if intersected {
                new = flatten(&new, true);
                continue;
            }
            new.push(marker.clone());
        }
    }
    if new.iter().any(Marker::is_empty) {
        return Ok(Marker::Empty);
    }
    match new.len() {
        0 => Ok(Marker::Any),
        1 => Ok(new.pop().unwrap()),
        _ => Ok(Marker::multi_raw(&new)),
    }
}

/// `MarkerUnion.of`: an OR with the easy simplifications applied.
pub fn union_of(markers: &[Marker]) -> MResult {
    let mut new: Vec<Marker> = flatten(markers, false);
    let mut old: Vec<Marker> = Vec::new();
    while old != new {
        old = std::mem::take(&mut new);
        for marker in &old {
            if new.contains(marker) || marker.is_empty() {
                continue;
            }
            let mut included = false;
            for slot in new.iter_mut() {
                let mark = slot.clone();
                let mut is_one_multi = false;
                let mut simplified = None;
                if let Marker::Multi(_) = mark {
                    is_one_multi = true;
                    simplified = union_simplify(&mark, marker)?;
                } else if let Marker::Multi(_) = marker {
                    is_one_multi = true;
                    simplified = union_simplify(marker, &mark)?;
                }
                if let Some(s) = simplified {
                    *slot = s;
                    included = true;
                    break;
                }
                if !is_one_multi && mark.is_single_like() {
                    let merged = mark.union(marker)?;
                    if merged.is_any() {
                        return Ok(Marker::Any);
                    }
                    if merged.is_single_like() || (matches!(merged, Marker::Multi(_)) && merged.complexity() <= (2, 2))
                    {
                        *slot = merged;
                        included = true;
                        break;
                    }
                }
            }
            if included {
                new = flatten(&new, false);
                continue;
            }
            new.push(marker.clone());
        }
    }
    if new.iter().any(Marker::is_any) {
        return Ok(Marker::Any);
    }
    match new.len() {
        0 => Ok(Marker::Empty),
        1 => Ok(new.pop().unwrap()),
        _ => Ok(Marker::union_raw(&new)),
    }
}

/// `MultiMarker.union_simplify`.
fn union_simplify(this: &Marker, other: &Marker) -> MResult<Option<Marker>> {
    let ours = this.items();
    if ours.contains(other) {
        return Ok(Some(other.clone()));
    }
    if let Marker::Single(o) = other {
        if is_python(&o.name) {
            for m in ours {
                if let Marker::Single(s) = m {
                    if is_python(&s.name) {
                        let constraint = python_constraint(m)?;
                        let other_constraint = python_constraint(other)?;
                        if other_constraint.allows_all(&constraint) {
                            return Ok(Some(other.clone()));
                        }
                    }
                }
            }
        }
    }
    if let Marker::Multi(n) = other {
        let theirs = &n.items;
        if is_subset(ours, theirs) {
            return Ok(Some(this.clone()));
        }
        if is_subset(theirs, ours) {
            return Ok(Some(other.clone()));
        }
        if !ours.iter().any(|m| theirs.contains(m)) {
            return Ok(None);
        }
        let unique: Vec<Marker> = ours.iter().filter(|m| !theirs.contains(m)).cloned().collect();
        let other_unique: Vec<Marker> = theirs.iter().filter(|m| !ours.contains(m)).cloned().collect();
        let unique_union = Marker::multi_raw(&unique).union(&Marker::multi_raw(&other_unique))?;
        if unique_union.is_single_like()
            || unique_union.is_any()
            || (matches!(unique_union, Marker::Multi(_)) && unique_union.complexity() <= (2, 2))
        {
            let common: Vec<Marker> = ours.iter().filter(|m| theirs.contains(m)).cloned().collect();
            return Ok(Some(unique_union.intersect(&Marker::multi_raw(&common))?));
        }
    }
    Ok(None)
}

/// `MarkerUnion.intersect_simplify`.
fn intersect_simplify(this: &Marker, other: &Marker) -> MResult<Option<Marker>> {
    let ours = this.items();
    if ours.contains(other) {
        return Ok(Some(other.clone()));
    }
    if let Marker::Single(o) = other {
        if is_python(&o.name) {
            for m in ours {
                if let Marker::Single(s) = m {
                    if is_python(&s.name) {
                        let constraint = python_constraint(m)?;
                        let other_constraint = python_constraint(other)?;
                        if constraint.allows_all(&other_constraint) {
                            return Ok(Some(other.clone()));
                        }
                    }
                }
            }
        }
    }
    if let Marker::Union(n) = other {
        let theirs = &n.items;
        if is_subset(ours, theirs) {
            return Ok(Some(this.clone()));
        }
        if is_subset(theirs, ours) {
            return Ok(Some(other.clone()));
        }
        if !ours.iter().any(|m| theirs.contains(m)) {
            return Ok(None);
        }
        let unique: Vec<Marker> = ours.iter().filter(|m| !theirs.contains(m)).cloned().collect();
        let other_unique: Vec<Marker> = theirs.iter().filter(|m| !ours.contains(m)).cloned().collect();
        let unique_intersection = Marker::union_raw(&unique).intersect(&Marker::union_raw(&other_unique))?;
        if unique_intersection.is_single_like()
            || unique_intersection.is_empty()
            || (matches!(unique_intersection, Marker::Union(_)) && unique_intersection.complexity() <= (2, 2))
        {
            let common: Vec<Marker> = ours.iter().filter(|m| theirs.contains(m)).cloned().collect();
            return Ok(Some(unique_intersection.union(&Marker::union_raw(&common))?));
        }
    }
    Ok(None)
}

/// Runs `f` with `args` pushed on a call stack; a call already on the stack is a `Recursion`.
fn guarded(
    stack: &'static std::thread::LocalKey<Memo<Vec<Vec<Marker>>>>,
    args: &[Marker],
    f: impl FnOnce() -> MResult,
) -> MResult {
    let seen = stack.with(|s| s.borrow().iter().any(|call| call.as_slice() == args));
    if seen {
        RECURSIONS.set(RECURSIONS.get() + 1);
        return Err(Recursion);
    }
    stack.with(|s| s.borrow_mut().push(args.to_vec()));
    let result = f();
    stack.with(|s| s.borrow_mut().pop());
    result
}

fn unwrap_single(mut m: Marker) -> Marker {
    loop {
        let next = match &m {
            Marker::Multi(n) | Marker::Union(n) if n.items.len() == 1 => n.items[0].clone(),
            _ => return m,
        };
        m = next;
    }
}

fn least_complex(candidates: Vec<Marker>) -> Marker {
    let mut best = candidates[0].clone();
    for c in &candidates[1..] {
        if c.complexity() < best.complexity() {
            best = c.clone();
        }
    }
    best
}

/// poetry-core's `intersection(*markers)`: the least complex of the DNF, the CNF and the plain AND.
pub fn intersection(markers: &[Marker]) -> MResult {
    normalized(true, markers)
}

/// poetry-core's `union(*markers)`: the least complex of the CNF, the DNF and the plain OR.
pub fn union(markers: &[Marker]) -> MResult {
    normalized(false, markers)
}

/// `intersection` (`and`) or `union` of `markers`: the normal form that suits the operation (DNF for an AND,
/// CNF for an OR) if it is not compound, else the other one if that is not, else the least complex of the two
/// and the plain marker.
///
/// Remembered when called from outside the algebra: the walker asks the same ones many times. Only there, and
/// only when no `Recursion` was raised on the way, is the result independent of the calls in progress; inside,
/// poetry-core's recursion limit can make it differ.
fn normalized(and: bool, markers: &[Marker]) -> MResult {
    type Plain = fn(&[Marker]) -> Marker;
    type Form = fn(&Marker) -> MResult;
    let (calls, plain, first, second): (_, Plain, Form, Form) = if and {
        (&INTERSECTION_CALLS, Marker::multi_raw, dnf, cnf)
    } else {
        (&UNION_CALLS, Marker::union_raw, cnf, dnf)
    };
    // A DNF is compound when it is an OR, a CNF when it is an AND.
    let compound =
        |m: &Marker, dnf: bool| if dnf { matches!(m, Marker::Union(_)) } else { matches!(m, Marker::Multi(_)) };
    let compute = || {
        guarded(calls, markers, || {
            let unnormalized = unwrap_single(plain(markers));
            let first_form = first(&unnormalized)?;
            if !compound(&first_form, and) {
                return Ok(first_form);
            }
            let candidates = match second(&first_form) {
                Ok(second_form) => {
                    if !compound(&second_form, !and) {
                        return Ok(second_form);
                    }
                    // The DNF first either way (the least complex wins, the first of equals).
                    let (disjunction, conjunction) =
                        if and { (first_form, second_form) } else { (second_form, first_form) };
                    vec![disjunction, conjunction, unnormalized]
                }
                Err(Recursion) => vec![first_form, unnormalized],
            };
            Ok(least_complex(candidates))
        })
    };

    let outer = INTERSECTION_CALLS.with(|s| s.borrow().is_empty()) && UNION_CALLS.with(|s| s.borrow().is_empty());
    if !outer {
        return compute();
    }
    let results = if and { &OUTER_INTERSECTIONS } else { &OUTER_UNIONS };
    if let Some(hit) = results.with(|r| r.borrow().get(markers).cloned()) {
        return Ok(hit);
    }
    let recursions = RECURSIONS.get();
    let result = compute()?;
    if RECURSIONS.get() == recursions {
        results.with(|r| r.borrow_mut().insert(markers.to_vec(), result.clone()));
    }
    Ok(result)
}

/// `itertools.product` of the lists, skipping combinations whose set of markers was seen already.
fn unique_product(lists: &[Vec<Marker>]) -> Vec<Vec<Marker>> {
    let mut out: Vec<Vec<Marker>> = Vec::new();
    let mut seen: FastMap<u64, Vec<usize>> = FastMap::default();
    if lists.iter().any(Vec::is_empty) {
        return out;
    }
    let mut idx = vec![0usize; lists.len()];
    loop {
        let combo: Vec<Marker> = idx.iter().enumerate().map(|(l, &i)| lists[l][i].clone()).collect();
        let mut distinct: Vec<&Marker> = Vec::new();
        for m in &combo {
            if !distinct.contains(&m) {
                distinct.push(m);
            }
        }
        let key =
            distinct.iter().fold(0u64, |acc, m| acc.wrapping_add(m.hash_value().wrapping_mul(0x9e3779b97f4a7c15)));
        let bucket = seen.entry(key).or_default();
        if !bucket.iter().any(|&j| same_set(&out[j], &combo)) {
            bucket.push(out.len());
            out.push(combo);
        }
        // advance (last list fastest)
        let mut l = lists.len();
        loop {
            if l == 0 {
                return out;
            }
            l -= 1;
            idx[l] += 1;
            if idx[l] < lists[l].len() {
                break;
            }
            idx[l] = 0;
        }
    }
}

fn cached(
    cache: &'static std::thread::LocalKey<Memo<FastMap<Marker, Marker>>>,
    marker: &Marker,
    f: impl FnOnce() -> MResult,
) -> MResult {
    if let Some(hit) = cache.with(|c| c.borrow().get(marker).cloned()) {
        return Ok(hit);
    }
    let result = f()?;
    cache.with(|c| c.borrow_mut().insert(marker.clone(), result.clone()));
    Ok(result)
}

/// Conjunctive normal form (cached, like poetry-core's `cnf`).
pub fn cnf(marker: &Marker) -> MResult {
    match marker {
        Marker::Union(n) => cached(&CNF_CACHE, marker, || {
            let cnf_markers = n.items.iter().map(cnf).collect::<MResult<Vec<_>>>()?;
            let lists: Vec<Vec<Marker>> = cnf_markers
                .iter()
                .map(|m| if let Marker::Multi(n) = m { n.items.clone() } else { vec![m.clone()] })
                .collect();
            let unions = unique_product(&lists).iter().map(|c| union_of(c)).collect::<MResult<Vec<_>>>()?;
            multi_of(&unions)
        }),
        Marker::Multi(n) => cached(&CNF_CACHE, marker, || {
            let items = n.items.iter().map(cnf).collect::<MResult<Vec<_>>>()?;
            multi_of(&items)
        }),
        _ => Ok(marker.clone()),
    }
}

/// Disjunctive normal form (cached, like poetry-core's `dnf`).
pub fn dnf(marker: &Marker) -> MResult {
    match marker {
        Marker::Multi(n) => cached(&DNF_CACHE, marker, || {
            let dnf_markers = n.items.iter().map(dnf).collect::<MResult<Vec<_>>>()?;
            let lists: Vec<Vec<Marker>> = dnf_markers
                .iter()
                .map(|m| if let Marker::Union(n) = m { n.items.clone() } else { vec![m.clone()] })
                .collect();
            let multis = unique_product(&lists).iter().map(|c| multi_of(c)).collect::<MResult<Vec<_>>>()?;
            union_of(&multis)
        }),
        Marker::Union(n) => cached(&DNF_CACHE, marker, || {
            let items = n.items.iter().map(dnf).collect::<MResult<Vec<_>>>()?;
            union_of(&items)
        }),
        _ => Ok(marker.clone()),
    }
}

thread_local! {
    static MERGE_CACHE: Memo<FastMap<(Marker, Marker, bool), Option<Marker>>> = memo(FastMap::default());
}

/// `_merge_single_markers`: the AND (`multi`) or OR of two single markers as one marker, when possible.
fn merge_single_markers(m1: &Marker, m2: &Marker, multi: bool) -> Option<Marker> {
    let key = (m1.clone(), m2.clone(), multi);
    if let Some(hit) = MERGE_CACHE.with(|c| c.borrow().get(&key).cloned()) {
        return hit;
    }
    let result = merge_single_markers_uncached(m1, m2, multi);
    MERGE_CACHE.with(|c| c.borrow_mut().insert(key, result.clone()));
    result
}

fn constraint_of(m: &Marker) -> MarkerConstraint {
    match m {
        Marker::Single(s) => s.constraint.clone(),
        Marker::AtomicMulti(a) | Marker::AtomicUnion(a) => MarkerConstraint::Generic(a.constraint.clone()),
        _ => unreachable!("constraint of a composite marker"),
    }
}

fn merge_single_markers_uncached(m1: &Marker, m2: &Marker, multi: bool) -> Option<Marker> {
    let (n1, n2) = (m1.name()?, m2.name()?);
    if is_python(n1) && is_python(n2) && n1 != n2 {
        return merge_python_version_single_markers(m1, m2, multi);
    }
    if n1 != n2 {
        return None;
    }
    let (c1, c2) = (constraint_of(m1), constraint_of(m2));
    let result = match (&c1, &c2) {
        (MarkerConstraint::Version(a), MarkerConstraint::Version(b)) => {
            MarkerConstraint::Version(if multi { a.intersect(b) } else { a.union(b) })
        }
        (MarkerConstraint::Generic(a), MarkerConstraint::Generic(b)) => {
            MarkerConstraint::Generic(if multi { a.intersect(b) } else { a.union(b) })
        }
        _ => return None,
    };
    if result.is_empty() {
        return Some(Marker::Empty);
    }
    if result.is_any() {
        return Some(Marker::Any);
    }
    if result == c1 {
        return Some(m1.clone());
    }
    if result == c2 {
        return Some(m2.clone());
    }
    let extra = n1 == "extra";
    match &result {
        MarkerConstraint::Generic(Generic::Single(_)) => return Some(SingleMarker::from_constraint(n1, &result)),
        MarkerConstraint::Version(v) if v.is_simple() => return Some(SingleMarker::from_constraint(n1, &result)),
        MarkerConstraint::Generic(g @ Generic::Union(cs))
            if cs.iter().all(|c| matches!(c, Generic::Single(s) if s.op == Op::Eq || (extra && s.op == Op::Ne))) =>
        {
            return Some(Marker::atomic_union(n1, g.clone()));
        }
        MarkerConstraint::Generic(g @ Generic::Multi(cs, _))
            if cs.iter().all(|s| s.op == Op::Ne || (extra && s.op == Op::Eq)) =>
        {
            return Some(Marker::atomic_multi(n1, g.clone()));
        }
        _ => {}
    }
    if n1 != PYTHON_VERSION {
        return None;
    }
    let MarkerConstraint::Version(rc) = &result else { return None };
    match rc {
        VersionConstraint::Range(r) if multi => {
            let mut result_marker = None;
            if let Some(min) = &r.min {
                let candidate = parse_marker(&format!("{n1} == \"{min}\"")).ok()?;
                if python_constraint(&candidate).ok()? == *rc {
                    result_marker = Some(candidate);
                }
            }
            if result_marker.is_none() {
                let rc = python_constraint(m1).ok()?.intersect(&python_constraint(m2).ok()?);
                if rc.is_empty() {
                    result_marker = Some(Marker::Empty);
                }
            }
            result_marker
        }
        VersionConstraint::Union(_) if !multi => {
            let rc = python_constraint(m1).ok()?.union(&python_constraint(m2).ok()?);
            if rc.is_any() {
                Some(Marker::Any)
            } else if rc.is_simple() {
                Some(SingleMarker::from_constraint(n1, &MarkerConstraint::Version(rc)))
            } else if let VersionConstraint::Range(r) = &rc {
                let lo = VersionConstraint::Range(Range::new(r.min.clone(), None, r.include_min, false));
                let hi = VersionConstraint::Range(Range::new(None, r.max.clone(), false, r.include_max));
                Some(Marker::multi_raw(&[
                    SingleMarker::from_constraint(n1, &MarkerConstraint::Version(lo)),
                    SingleMarker::from_constraint(n1, &MarkerConstraint::Version(hi)),
                ]))
            } else {
                None
            }
        }
        _ => None,
    }
}

fn merge_python_version_single_markers(m1: &Marker, m2: &Marker, multi: bool) -> Option<Marker> {
    let (version_marker, full_version_marker) = if m1.name() == Some(PYTHON_VERSION) { (m1, m2) } else { (m2, m1) };
    let normalized_constraint = python_constraint(version_marker).ok()?;
    let normalized_marker =
        SingleMarker::from_constraint(PYTHON_FULL_VERSION, &MarkerConstraint::Version(normalized_constraint));
    let merged = merge_single_markers(&normalized_marker, full_version_marker, multi);
    if merged.as_ref() == Some(&normalized_marker) {
        return Some(version_marker.clone());
    }
    if let Some(Marker::Single(s)) = &merged {
        let mut marker_string = merged.as_ref().unwrap().to_string();
        let precision = marker_string.matches('.').count() + 1;
        let mut target = 3;
        if precision < target {
            if s.op == "<" || s.op == ">=" {
                target = 2;
                marker_string = marker_string.replace(PYTHON_FULL_VERSION, PYTHON_VERSION);
            }
            marker_string.pop();
            marker_string.push_str(&".0".repeat(target - precision));
            marker_string.push('"');
        } else if precision == target
            && (s.op == "<" || s.op == ">=")
            && marker_string[..marker_string.len() - 1].ends_with(".0")
        {
            marker_string = marker_string.replace(PYTHON_FULL_VERSION, PYTHON_VERSION);
            marker_string.truncate(marker_string.len() - 3);
            marker_string.push('"');
        }
        return parse_marker(&marker_string).ok();
    }
    merged
}

// ------------------------------------------------------------------------------------------------
// Helpers from poetry-core's packages.utils.utils
// ------------------------------------------------------------------------------------------------

/// For each marker name, the constraints per DNF conjunction (poetry-core's `convert_markers`); names in
/// first-seen order, `python_full_version` folded into `python_version`.
pub type ConvertedMarkers = Vec<(String, Vec<Vec<(String, String)>>)>;

pub fn convert_markers(marker: &Marker) -> MResult<ConvertedMarkers> {
    let marker = dnf(marker)?;
    let conjunctions: Vec<Marker> = match &marker {
        Marker::Union(n) => n.items.clone(),
        other => vec![other.clone()],
    };
    let group_count = conjunctions.len();
    let mut requirements: ConvertedMarkers = Vec::new();
    let mut add = |name: &str, constraint: (String, String), i: usize| {
        let name = if name == PYTHON_FULL_VERSION { PYTHON_VERSION } else { name };
        let pos = match requirements.iter().position(|(n, _)| n == name) {
            Some(p) => p,
            None => {
                requirements.push((name.to_string(), vec![Vec::new(); group_count]));
                requirements.len() - 1
            }
        };
        requirements[pos].1[i].push(constraint);
    };
    let entry = |m: &Marker| -> Option<(String, (String, String))> {
        match m {
            Marker::Single(s) => Some((s.name.clone(), (s.op.clone(), s.value.clone()))),
            Marker::AtomicMulti(a) | Marker::AtomicUnion(a) => {
                Some((a.name.clone(), (String::new(), a.constraint.to_string())))
            }
            _ => None,
        }
    };
    for (i, sub) in conjunctions.iter().enumerate() {
        match sub {
            Marker::Multi(n) => {
                for m in &n.items {
                    if let Some((name, c)) = entry(m) {
                        add(&name, c, i);
                    }
                }
            }
            m => {
                if let Some((name, c)) = entry(m) {
                    add(&name, c, i);
                }
            }
        }
    }
    for (_, groups) in requirements.iter_mut() {
        let mut seen: Vec<Vec<(String, String)>> = Vec::new();
        for g in groups.drain(..) {
            if !seen.contains(&g) {
                seen.push(g);
            }
        }
        *groups = seen;
    }
    Ok(requirements)
}

pub fn contains_group_without_marker(markers: &ConvertedMarkers, name: &str) -> bool {
    match markers.iter().find(|(n, _)| n == name) {
        None => true,
        Some((_, groups)) => groups.iter().any(Vec::is_empty),
    }
}

/// The Python versions a marker allows (poetry-core's `get_python_constraint_from_marker`).
pub fn python_constraint(marker: &Marker) -> MResult<VersionConstraint> {
    let python_marker = marker.only(&[PYTHON_VERSION, PYTHON_FULL_VERSION])?;
    if python_marker.is_any() {
        return Ok(VersionConstraint::any());
    }
    if python_marker.is_empty() {
        return Ok(VersionConstraint::Empty);
    }
    let markers = convert_markers(marker)?;
    if contains_group_without_marker(&markers, PYTHON_VERSION) {
        return Ok(VersionConstraint::any());
    }
    let groups = &markers.iter().find(|(n, _)| n == PYTHON_VERSION).unwrap().1;
    let normalized = normalize_python_version_markers(groups);
    Ok(pep440::parse_marker_constraint(&normalized).unwrap_or(VersionConstraint::Empty))
}

/// poetry-core's `normalize_python_version_markers`: the constraint string of python_version comparisons.
pub fn normalize_python_version_markers(disjunction: &[Vec<(String, String)>]) -> String {
    let mut ors = Vec::new();
    for or_ in disjunction {
        let mut ands: Vec<String> = Vec::new();
        for (op, version) in or_ {
            let mut op = op.clone();
            let mut version = version.clone();
            if op == "==" && !version.contains('*') && version.matches('.').count() < 2 {
                if !version.contains('.') {
                    version.push_str(".0");
                }
                version = format!("~{version}");
                op = String::new();
            } else if op == "!=" && !version.contains('*') && version.matches('.').count() < 2 {
                if !version.contains('.') {
                    version.push_str(".0");
                }
                version.push_str(".*");
            } else if op == "<=" || op == ">" {
                if let Some(parsed) = Version::parse(&version) {
                    if parsed.precision() < 3 {
                        op = if op == "<=" { "<".into() } else { ">=".into() };
                        version = parsed.next_minor().text().to_string();
                    }
                }
            } else if op == "in" || op == "not in" {
                let mut versions = Vec::new();
                for v in split_values(&version) {
                    let mut split: Vec<&str> = v.split('.').collect();
                    let op_ = if split.len() == 1 || split.len() == 2 {
                        split.push("*");
                        if op == "in" {
                            ""
                        } else {
                            "!="
                        }
                    } else if op == "in" {
                        "=="
                    } else {
                        "!="
                    };
                    versions.push(format!("{op_}{}", split.join(".")));
                }
                if !versions.is_empty() {
                    ands.push(versions.join(if op == "in" { " || " } else { ", " }));
                }
                continue;
            }
            ands.push(format!("{op}{version}"));
        }
        ors.push(ands.join(" "));
    }
    ors.join(" || ")
}

/// poetry-core's `create_nested_marker` for a version constraint.
pub fn nested_version_marker(name: &str, constraint: &VersionConstraint) -> String {
    if constraint.is_any() {
        return String::new();
    }
    match constraint {
        VersionConstraint::Union(ranges) => {
            ranges.iter().map(|r| format!("({})", nested_version_marker(name, r))).collect::<Vec<_>>().join(" or ")
        }
        VersionConstraint::Version(v) => {
            let name = if name == PYTHON_VERSION && v.precision() >= 3 { PYTHON_FULL_VERSION } else { name };
            format!("{name} == \"{}\"", v.text())
        }
        VersionConstraint::Range(r) => {
            let mut parts = Vec::new();
            if let Some(min) = &r.min {
                let op = if r.include_min { ">=" } else { ">" };
                let min_name = if name == PYTHON_VERSION && min.precision() >= 3 { PYTHON_FULL_VERSION } else { name };
                if min_name == PYTHON_VERSION && !r.include_min && min.precision() < 3 {
                    parts.push(format!("python_full_version > \"{}\"", min.with_full_release()));
                } else {
                    parts.push(format!("{min_name} {op} \"{}\"", min.stable()));
                }
            }
            if let Some(max) = &r.max {
                let op = if r.include_max { "<=" } else { "<" };
                let max_name = if name == PYTHON_VERSION && max.precision() >= 3 { PYTHON_FULL_VERSION } else { name };
                if max_name == PYTHON_VERSION && r.include_max && max.precision() < 3 {
                    parts.push(format!("python_full_version <= \"{}\"", max.with_full_release()));
                } else {
                    parts.push(format!("{max_name} {op} \"{}\"", max.stable()));
                }
            }
            parts.join(" and ")
        }
        VersionConstraint::Empty => "<empty>".to_string(),
    }
}

/// poetry-core's `create_nested_marker` for a string constraint given as text (e.g. `sys_platform`).
pub fn nested_generic_marker(name: &str, constraint: &str) -> Result<String, String> {
    Ok(nested_generic(name, &parse_generic(constraint, name == "extra")?))
}

fn nested_generic(name: &str, constraint: &Generic) -> String {
    match constraint {
        Generic::Any => String::new(),
        Generic::Multi(cs, _) => {
            cs.iter().map(|c| format!("{name} {} \"{}\"", c.op.as_str(), c.value)).collect::<Vec<_>>().join(" and ")
        }
        Generic::Union(cs) => cs
            .iter()
            .map(|c| match c {
                Generic::Multi(..) | Generic::Union(_) => format!("({})", nested_generic(name, c)),
                _ => nested_generic(name, c),
            })
            .collect::<Vec<_>>()
            .join(" or "),
        Generic::Single(c) => format!("{name} {} \"{}\"", c.op.as_str(), c.value),
        Generic::Empty => String::new(),
    }
}

/// `SingleMarker(name, "op value")`: one comparison, unsimplified.
pub fn single(name: &str, constraint: &str) -> Result<Marker, String> {
    SingleMarker::marker(name, constraint, false)
}

/// The marker `python_version ...` for a project's Python constraint, parsed.
pub fn python_marker(constraint: &VersionConstraint) -> Result<Marker, String> {
    parse_marker(&nested_version_marker(PYTHON_VERSION, constraint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::{expect, Expect};

    fn p(s: &str) -> Marker {
        parse_marker(s).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `a & b` and `a | b`, printed.
    fn check_ops(a: &str, b: &str, expect: Expect) {
        let (a, b) = (p(a), p(b));
        let and = a.intersect(&b).map(|m| m.to_string()).unwrap_or_else(|_| "recursion".into());
        let or = a.union(&b).map(|m| m.to_string()).unwrap_or_else(|_| "recursion".into());
        expect.assert_eq(&format!("and: {and}\nor: {or}"));
    }

    fn check(actual: impl fmt::Display, expect: Expect) {
        expect.assert_eq(&actual.to_string());
    }

    #[test]
    fn parse_and_print() {
        check(
            p(r#"python_version >= "3.6" and (sys_platform == "linux" or sys_platform == "win32")"#),
            expect![[r#"python_version >= "3.6" and (sys_platform == "linux" or sys_platform == "win32")"#]],
        );
        check(p(r#"python_version >= "3.8" and python_version < "3.9""#), expect![[r#"python_version == "3.8""#]]);
        check(
            p(r#"python_version == "3.8" or python_version == "3.9""#),
            expect![[r#"python_version >= "3.8" and python_version < "3.10""#]],
        );
        check(p(r#"python_version <= "3.8" or python_version >= "3.9""#), expect![""]);
        check(p(r#"python_version > "3.8" and python_version < "3.9""#), expect!["<empty>"]);
        check(p(r#"python_full_version >= "3.6" "#), expect![[r#"python_full_version >= "3.6.0""#]]);
        check(
            p(r#"python_version >= "3.6" and python_full_version < "3.6.2""#),
            expect![[r#"python_version >= "3.6" and python_full_version < "3.6.2""#]],
        );
        check(
            p(r#"python_version >= "3.6" and python_full_version >= "3.6.2""#),
            expect![[r#"python_full_version >= "3.6.2""#]],
        );
        check(p(r#"python_version in "3.6 3.7""#), expect![[r#"python_version in "3.6 3.7""#]]);
        check(p(r#""tegra" in platform_release"#), expect![[r#""tegra" in platform_release"#]]);
        check(
            p(r#"sys_platform != "win32" and sys_platform != "cygwin""#),
            expect![[r#"sys_platform != "win32" and sys_platform != "cygwin""#]],
        );
        check(p(r#"extra == "a" or extra == "b""#), expect![[r#"extra == "a" or extra == "b""#]]);
        check(p(r#"os.name == "nt""#), expect![[r#"os_name == "nt""#]]);
        check(
            p(r#"implementation_name != "pypy" and platform_python_implementation == "CPython""#),
            expect![[r#"implementation_name != "pypy" and platform_python_implementation == "CPython""#]],
        );
        assert!(parse_marker(r#"python_version >= 3.6"#).is_err());
    }

    #[test]
    fn algebra() {
        check_ops(
            r#"python_version >= "3.6""#,
            r#"python_version < "4.0""#,
            expect![[r#"
            and: python_version >= "3.6" and python_version < "4.0"
            or: "#]],
        );
        check_ops(
            r#"sys_platform == "linux""#,
            r#"sys_platform == "win32""#,
            expect![[r#"
            and: <empty>
            or: sys_platform == "linux" or sys_platform == "win32""#]],
        );
        check_ops(
            r#"python_version == "2.7""#,
            r#"python_version >= "3.5" and python_version < "4.0""#,
            expect![[r#"
            and: <empty>
            or: python_version >= "3.5" and python_version < "4.0" or python_version == "2.7""#]],
        );
        check_ops(
            r#"python_version >= "3.9" and python_version < "4.0""#,
            r#"python_version < "3.11""#,
            expect![[r#"
            and: python_version >= "3.9" and python_version < "3.11"
            or: python_version < "4.0""#]],
        );
        check_ops(
            r#"python_version >= "3.8" and sys_platform == "linux""#,
            r#"python_version > "3.6""#,
            expect![[r#"
            and: python_version >= "3.8" and sys_platform == "linux"
            or: python_version > "3.6""#]],
        );
        check_ops(
            r#"extra == "a""#,
            r#"extra != "a""#,
            expect![[r#"
            and: <empty>
            or: "#]],
        );
        check_ops(
            r#"platform_system == "Windows""#,
            r#"python_version < "3.8""#,
            expect![[r#"
            and: platform_system == "Windows" and python_version < "3.8"
            or: platform_system == "Windows" or python_version < "3.8""#]],
        );
        check_ops(
            r#"python_full_version >= "3.9.0" and python_version < "4.0""#,
            r#"python_version >= "3.10""#,
            expect![[r#"
            and: python_version >= "3.10" and python_version < "4.0"
            or: python_version >= "3.9""#]],
        );
    }

    #[test]
    fn extras_and_python() {
        let m = p(r#"python_version >= "3.10" and extra == "syntax""#);
        check(m.apply_extras(&["syntax".into()]).unwrap(), expect![[r#"python_version >= "3.10""#]]);
        check(m.apply_extras(&[]).unwrap(), expect!["<empty>"]);
        check(m.without_extras().unwrap(), expect![[r#"python_version >= "3.10""#]]);
        check(
            python_constraint(&p(r#"python_version >= "3.6" and python_version < "4.0""#)).unwrap(),
            expect![">=3.6,<4.0"],
        );
        check(python_constraint(&p(r#"python_version <= "3.8""#)).unwrap(), expect!["<3.9"]);
        check(python_constraint(&p(r#"python_full_version < "3.5.4""#)).unwrap(), expect!["<3.5.4"]);
        let c = pep440::parse_marker_constraint("~2.7 || ^3.5").unwrap();
        check(
            nested_version_marker("python_version", &c),
            expect![[
                r#"(python_version >= "2.7" and python_version < "2.8") or (python_version >= "3.5" and python_version < "4.0")"#
            ]],
        );
        check(
            python_marker(&c).unwrap(),
            expect![[r#"python_version == "2.7" or python_version >= "3.5" and python_version < "4.0""#]],
        );
        let c = pep440::parse_marker_constraint(">3.6,<=3.9").unwrap();
        check(
            nested_version_marker("python_version", &c),
            expect![[r#"python_full_version > "3.6.0" and python_full_version <= "3.9.0""#]],
        );
        check(
            nested_generic_marker("sys_platform", "linux || win32").unwrap(),
            expect![[r#"sys_platform == "linux" or sys_platform == "win32""#]],
        );
        check(canonicalize_name("Foo.Bar__baz"), expect!["foo-bar-baz"]);
    }
    /// Each line: `op|marker|marker`; the result, one line per case. The expected lines were checked
    /// against poetry-core 2.5.0 itself.
    fn check_cases(cases: &str, expect: Expect) {
        let mut out = String::new();
        for line in cases.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let parts: Vec<&str> = line.split('|').collect();
            let (op, a) = (parts[0], p(parts[1]));
            let result = match op {
                "print" => a.to_string(),
                "and" => a.intersect(&p(parts[2])).unwrap().to_string(),
                "or" => a.union(&p(parts[2])).unwrap().to_string(),
                "noextra" => a.without_extras().unwrap().to_string(),
                "apply_a" => a.apply_extras(&["a".to_string()]).unwrap().to_string(),
                "python" => python_constraint(&a).unwrap().to_string(),
                other => panic!("unknown op {other}"),
            };
            out.push_str(&format!("{line} => {result}\n"));
        }
        expect.assert_eq(&out);
    }

    #[test]
    fn cases_checked_against_poetry_core() {
        check_cases(
            r#"
            print|python_version >= "3.6" and python_version < "3.9" or sys_platform == "win32"
            print|(python_version < "3.8" or python_version >= "3.10") and platform_system != "Windows"
            print|python_version ~= "3.8"
            print|python_version != "3.8" and python_version != "3.9"
            print|python_version == "3.8.*"
            print|python_full_version >= "3.8.1" and python_version < "3.9"
            print|python_full_version < "3.8"
            print|python_version > "3" and python_version <= "3.10"
            print|python_version not in "3.6 3.7"
            print|sys_platform in "linux darwin"
            print|platform_machine != "arm64" and platform_machine != "aarch64" and platform_machine != "x86_64"
            print|implementation_name == "cpython" or implementation_name == "pypy" or implementation_name == "graalpy"
            print|extra == "a" and extra == "b" or extra != "c"
            print|"arm" in platform_machine and platform_release >= "5.10"
            print|python_version >= "3.8" and (sys_platform == "linux" or sys_platform == "darwin") and python_version < "3.12"
            and|python_version >= "3.8"|python_version < "3.8"
            and|python_version >= "3.8" or sys_platform == "win32"|python_version < "3.8"
            and|python_version < "3.10" or platform_machine == "x86_64"|python_version >= "3.9" and python_version < "3.11"
            and|python_full_version >= "3.8.1"|python_version >= "3.8" and python_version < "4.0"
            and|python_version == "2.7" or python_version >= "3.5" and python_version < "4.0"|python_version < "3.8"
            and|sys_platform != "win32"|sys_platform == "linux" or sys_platform == "win32"
            and|extra == "a" or extra == "b"|python_version < "3.8"
            and|platform_system == "Windows" or sys_platform == "win32"|python_version >= "3.7" and python_version < "4.0"
            or|python_version >= "3.8" and python_version < "3.10"|python_version >= "3.10" and python_version < "3.12"
            or|python_version < "3.8"|python_version >= "3.8" and sys_platform == "linux"
            or|python_full_version < "3.8.1"|python_version >= "3.8"
            or|python_version == "3.7"|python_version == "3.8" or python_version == "3.9"
            or|sys_platform == "linux" and python_version < "3.9"|sys_platform == "linux" and python_version >= "3.9"
            or|implementation_name != "pypy" and python_version < "3.9"|python_version >= "3.9"
            or|platform_machine == "x86_64" and sys_platform == "linux"|platform_machine == "aarch64" and sys_platform == "linux"
            or|extra == "a"|extra == "b" and python_version < "3.8"
            noextra|python_version < "3.9" and extra == "test" or extra == "docs"
            noextra|(extra == "a" or python_version >= "3.10") and sys_platform == "linux"
            apply_a|extra == "a" and python_version < "3.9" or extra == "b" and sys_platform == "win32"
            apply_a|extra != "a" and python_version >= "3.11"
            python|python_version >= "3.8" and python_version < "3.10" or python_version >= "3.12"
            python|python_full_version > "3.8.1" and sys_platform == "linux"
            python|python_version in "3.8 3.9"
            python|sys_platform == "win32"
            "#,
            expect![[r#"
                print|python_version >= "3.6" and python_version < "3.9" or sys_platform == "win32" => python_version >= "3.6" and python_version < "3.9" or sys_platform == "win32"
                print|(python_version < "3.8" or python_version >= "3.10") and platform_system != "Windows" => (python_version < "3.8" or python_version >= "3.10") and platform_system != "Windows"
                print|python_version ~= "3.8" => python_version ~= "3.8"
                print|python_version != "3.8" and python_version != "3.9" => python_version != "3.8" and python_version != "3.9"
                print|python_version == "3.8.*" => python_version == "3.8.*"
                print|python_full_version >= "3.8.1" and python_version < "3.9" => python_full_version >= "3.8.1" and python_version < "3.9"
                print|python_full_version < "3.8" => python_full_version < "3.8.0"
                print|python_version > "3" and python_version <= "3.10" => python_version > "3" and python_version <= "3.10"
                print|python_version not in "3.6 3.7" => python_version not in "3.6 3.7"
                print|sys_platform in "linux darwin" => sys_platform in "linux darwin"
                print|platform_machine != "arm64" and platform_machine != "aarch64" and platform_machine != "x86_64" => platform_machine != "arm64" and platform_machine != "aarch64" and platform_machine != "x86_64"
                print|implementation_name == "cpython" or implementation_name == "pypy" or implementation_name == "graalpy" => implementation_name == "cpython" or implementation_name == "pypy" or implementation_name == "graalpy"
                print|extra == "a" and extra == "b" or extra != "c" => extra == "a" and extra == "b" or extra != "c"
                print|"arm" in platform_machine and platform_release >= "5.10" => "arm" in platform_machine and platform_release >= "5.10"
                print|python_version >= "3.8" and (sys_platform == "linux" or sys_platform == "darwin") and python_version < "3.12" => python_version >= "3.8" and (sys_platform == "linux" or sys_platform == "darwin") and python_version < "3.12"
                and|python_version >= "3.8"|python_version < "3.8" => <empty>
                and|python_version >= "3.8" or sys_platform == "win32"|python_version < "3.8" => sys_platform == "win32" and python_version < "3.8"
                and|python_version < "3.10" or platform_machine == "x86_64"|python_version >= "3.9" and python_version < "3.11" => python_version == "3.9" or platform_machine == "x86_64" and python_version >= "3.9" and python_version < "3.11"
                and|python_full_version >= "3.8.1"|python_version >= "3.8" and python_version < "4.0" => python_full_version >= "3.8.1" and python_version < "4.0"
                and|python_version == "2.7" or python_version >= "3.5" and python_version < "4.0"|python_version < "3.8" => python_version == "2.7" or python_version >= "3.5" and python_version < "3.8"
                and|sys_platform != "win32"|sys_platform == "linux" or sys_platform == "win32" => sys_platform == "linux"
                and|extra == "a" or extra == "b"|python_version < "3.8" => (extra == "a" or extra == "b") and python_version < "3.8"
                and|platform_system == "Windows" or sys_platform == "win32"|python_version >= "3.7" and python_version < "4.0" => (platform_system == "Windows" or sys_platform == "win32") and python_version >= "3.7" and python_version < "4.0"
                or|python_version >= "3.8" and python_version < "3.10"|python_version >= "3.10" and python_version < "3.12" => python_version >= "3.8" and python_version < "3.12"
                or|python_version < "3.8"|python_version >= "3.8" and sys_platform == "linux" => sys_platform == "linux" or python_version < "3.8"
                or|python_full_version < "3.8.1"|python_version >= "3.8" => 
                or|python_version == "3.7"|python_version == "3.8" or python_version == "3.9" => python_version >= "3.7" and python_version < "3.10"
                or|sys_platform == "linux" and python_version < "3.9"|sys_platform == "linux" and python_version >= "3.9" => sys_platform == "linux"
                or|implementation_name != "pypy" and python_version < "3.9"|python_version >= "3.9" => implementation_name != "pypy" or python_version >= "3.9"
                or|platform_machine == "x86_64" and sys_platform == "linux"|platform_machine == "aarch64" and sys_platform == "linux" => (platform_machine == "x86_64" or platform_machine == "aarch64") and sys_platform == "linux"
                or|extra == "a"|extra == "b" and python_version < "3.8" => extra == "b" and python_version < "3.8" or extra == "a"
                noextra|python_version < "3.9" and extra == "test" or extra == "docs" => 
                noextra|(extra == "a" or python_version >= "3.10") and sys_platform == "linux" => sys_platform == "linux"
                apply_a|extra == "a" and python_version < "3.9" or extra == "b" and sys_platform == "win32" => python_version < "3.9"
                apply_a|extra != "a" and python_version >= "3.11" => <empty>
                python|python_version >= "3.8" and python_version < "3.10" or python_version >= "3.12" => >=3.8,<3.10 || >=3.12
                python|python_full_version > "3.8.1" and sys_platform == "linux" => >3.8.1
                python|python_version in "3.8 3.9" => >=3.8,<3.10
                python|sys_platform == "win32" => *
            "#]],
        );
    }
}

//! Schema compatibility: production's and staging's synced tables compared
//! column by column (by name) before anything changes, so a drifted staging
//! is refused by name instead of loaded with garbage.
//!
//! What counts as a difference (every one is listed, `schema.table.column:
//! production … / staging …`):
//! - a table production has and staging lacks (among the tables the
//!   selection covers, with the partitions the copy loads); a table only
//!   staging has is listed but refuses nothing: the run leaves staging's own
//!   tables as they are;
//! - a column missing on staging; a column only on staging that is
//!   `NOT NULL` without a default (the load would fail);
//! - a column generated on one side only (staging would compute it, or keep
//!   it empty);
//! - the exact type with its modifier (`varchar(5)` vs `text`,
//!   `numeric(10,2)` vs `numeric`); for user types, what they are made of:
//!   enum labels, a domain's base type and constraints, a composite's
//!   attributes, an array's element, a range's subtype;
//! - a collation that changes equality (a nondeterministic one on either side).
//!
//! A type difference where production's values always fit staging's type
//! (integer widening, `real` → `double precision`, a longer `varchar`, a
//! wider `numeric`, …) may be copied through a cast when the configuration
//! opts in (`allow_lossless_casts: true`): the copy then selects
//! `CAST(column AS staging_type)`. The default is to refuse.
//!
//! The comparison also says, per table, whether the binary COPY format is
//! safe: composites of user types and extension types travel in text format
//! (see [`binary_safe`]); every other table in binary.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use dbsync_workflow::StepError;
use tokio_postgres::{types::Type, Client};

use crate::{classify, selected_tables, sql::ident, Selection};

/// The first oid of objects made after `initdb` (PostgreSQL's `FirstNormalObjectId`).
const FIRST_USER_OID: u32 = 16384;

/// Differences listed in an error message before "and N more".
const LISTED: usize = 60;

/// Columns of the selected tables and the leaf partitions the copy loads.
const COLUMNS: &str = "
WITH sel AS (SELECT pg_catalog.unnest($1::pg_catalog.oid[]) AS oid),
rels AS (
    SELECT oid FROM sel
    UNION
    SELECT t.relid FROM sel, pg_catalog.pg_partition_tree(sel.oid) AS t
)
SELECT n.nspname::text AS schema, c.relname::text AS name, a.attname::text AS col,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS display, a.atttypid AS type_oid,
       a.attnotnull AS not_null, a.atthasdef AS has_default,
       a.attgenerated <> '' AS generated, a.attidentity <> '' AS identity,
       CASE WHEN a.attcollation = 0 THEN NULL
            ELSE pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname) END AS collation,
       coalesce(co.collisdeterministic, true) AS deterministic
FROM (SELECT DISTINCT oid FROM rels) AS r
JOIN pg_catalog.pg_class c ON c.oid = r.oid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
WHERE c.relkind IN ('r', 'p')
ORDER BY 1, 2, a.attnum";

/// What user-defined types are made of (`$1` = their oids).
const TYPES: &str = "
SELECT t.oid, pg_catalog.format_type(t.oid, NULL) AS name, t.typtype::text AS kind,
       CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE 0::pg_catalog.oid END AS elem,
       t.typbasetype AS base, pg_catalog.format_type(t.typbasetype, t.typtypmod) AS base_name,
       t.typnotnull AS not_null,
       ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e
             WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder) AS labels,
       ARRAY(SELECT pg_catalog.pg_get_constraintdef(k.oid) FROM pg_catalog.pg_constraint k
             WHERE k.contypid = t.oid ORDER BY 1) AS checks,
       ARRAY(SELECT a.attname::text FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS att_names,
       ARRAY(SELECT a.atttypid FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS att_types,
       ARRAY(SELECT pg_catalog.format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute a
             WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS att_display,
       coalesce((SELECT r.rngsubtype FROM pg_catalog.pg_range r WHERE r.rngtypid = t.oid), 0) AS subtype,
       coalesce((SELECT pg_catalog.format_type(r.rngsubtype, NULL) FROM pg_catalog.pg_range r
                 WHERE r.rngtypid = t.oid), '') AS subtype_name
FROM pg_catalog.pg_type t WHERE t.oid = ANY($1)";

/// One column as the comparison sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// The type as written, with its modifier; user types schema-qualified.
    pub display: String,
    /// `display` plus what user types are made of (labels, base types, …).
    pub signature: String,
    pub not_null: bool,
    pub has_default: bool,
    pub generated: bool,
    pub identity: bool,
    /// Collation name and whether it is deterministic.
    pub collation: Option<(String, bool)>,
    /// Whether its binary COPY value can be read by another database.
    pub binary_safe: bool,
    builtin: bool,
}

/// One table's columns, in column order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableShape {
    pub columns: Vec<Column>,
}

/// The synced tables of one database: `(schema, table)` → shape.
pub type Shapes = BTreeMap<(String, String), TableShape>;

/// One difference that refuses the run (or, opted in, is cast).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// `schema.table` or `schema.table.column`, quoted where needed.
    pub object: String,
    pub production: String,
    pub staging: String,
    /// A type difference production's values always survive (`CAST`).
    pub lossless_cast: bool,
    /// Worth saying, refuses nothing: a table only staging has, which the
    /// run leaves as it is (staging's own tables, e.g. QA notes).
    pub note_only: bool,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: production {} / staging {}",
            self.object, self.production, self.staging
        )?;
        if self.lossless_cast {
            write!(f, " (lossless: allow_lossless_casts copies it with a cast)")?;
        }
        if self.note_only {
            write!(f, " (staging's own: kept as it is)")?;
        }
        Ok(())
    }
}

/// How the copy reads one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyFormat {
    /// Binary COPY is safe for every column.
    pub binary: bool,
    /// Column → staging's type, for the columns copied through a cast.
    pub casts: BTreeMap<String, String>,
}

/// The comparison of the two sides.
#[derive(Debug, Clone, Default)]
pub struct Compatibility {
    pub differences: Vec<Difference>,
    /// Per production table, how the copy reads it.
    pub formats: BTreeMap<(String, String), CopyFormat>,
    /// Production tables compared.
    pub tables: usize,
}

impl Compatibility {
    /// The differences that refuse the run (all of them, or with the opt-in
    /// the ones no lossless cast covers).
    pub fn blocking(&self, allow_casts: bool) -> Vec<&Difference> {
        self.differences
            .iter()
            .filter(|d| !(d.note_only || allow_casts && d.lossless_cast))
            .collect()
    }

    /// `SchemaMismatch` listing every blocking difference, or `Ok`.
    pub fn require(&self, allow_casts: bool) -> Result<(), StepError> {
        let blocking = self.blocking(allow_casts);
        if blocking.is_empty() {
            return Ok(());
        }
        let mut text = format!(
            "{} difference(s) between production and staging:",
            blocking.len()
        );
        for d in blocking.iter().take(LISTED) {
            text.push_str("\n  ");
            text.push_str(&d.to_string());
        }
        if blocking.len() > LISTED {
            text.push_str(&format!(
                "\n  … and {} more (`dbsync plan --source … --target …` lists them all)",
                blocking.len() - LISTED
            ));
        }
        let castable = blocking.iter().filter(|d| d.lossless_cast).count();
        if castable > 0 && !allow_casts {
            text.push_str(&format!("\n{castable} of them can be copied through a lossless cast with `allow_lossless_casts: true` in the sync configuration"));
        }
        Err(StepError::SchemaMismatch(text))
    }
}

#[derive(Debug, Clone)]
struct TypeInfo {
    name: String,
    kind: String,
    elem: u32,
    base: u32,
    base_name: String,
    not_null: bool,
    labels: Vec<String>,
    checks: Vec<String>,
    attributes: Vec<(String, u32, String)>,
    subtype: u32,
    subtype_name: String,
}

/// Reads the shapes of the tables `selection` covers. Runs in its own
/// read-only transaction with an empty search path (user types come out
/// schema-qualified), so `client` must not be inside a transaction.
pub async fn shapes(client: &Client, selection: &Selection) -> Result<Shapes, StepError> {
    let ctx = "reading the synced tables' columns";
    let err = |e| classify(e, ctx);
    let oids: Vec<u32> = selected_tables(client, selection)
        .await?
        .iter()
        .map(|t| t.oid)
        .collect();
    client
        .batch_execute("BEGIN READ ONLY; SET LOCAL search_path = ''")
        .await
        .map_err(err)?;
    let result = read_shapes(client, &oids).await;
    let _ = client.batch_execute("COMMIT").await;
    result
}

async fn read_shapes(client: &Client, oids: &[u32]) -> Result<Shapes, StepError> {
    let ctx = "reading the synced tables' columns";
    let err = |e| classify(e, ctx);
    let rows = client
        .query_typed(COLUMNS, &[(&oids, Type::OID_ARRAY)])
        .await
        .map_err(err)?;
    let mut wanted: BTreeSet<u32> = rows
        .iter()
        .map(|r| r.get::<_, u32>("type_oid"))
        .filter(|&o| o >= FIRST_USER_OID)
        .collect();
    let mut types: HashMap<u32, TypeInfo> = HashMap::new();
    // User types made of user types: read until closed (bounded by the catalog).
    while !wanted.is_empty() {
        let ask: Vec<u32> = std::mem::take(&mut wanted).into_iter().collect();
        for r in client
            .query_typed(TYPES, &[(&ask, Type::OID_ARRAY)])
            .await
            .map_err(err)?
        {
            let names: Vec<String> = r.get("att_names");
            let oids: Vec<u32> = r.get("att_types");
            let shown: Vec<String> = r.get("att_display");
            let info = TypeInfo {
                name: r.get("name"),
                kind: r.get("kind"),
                elem: r.get("elem"),
                base: r.get("base"),
                base_name: r.get("base_name"),
                not_null: r.get("not_null"),
                labels: r.get("labels"),
                checks: r.get("checks"),
                attributes: names
                    .into_iter()
                    .zip(oids)
                    .zip(shown)
                    .map(|((n, o), s)| (n, o, s))
                    .collect(),
                subtype: r.get("subtype"),
                subtype_name: r.get("subtype_name"),
            };
            let refs = [info.elem, info.base, info.subtype]
                .into_iter()
                .chain(info.attributes.iter().map(|a| a.1));
            for o in refs {
                if o >= FIRST_USER_OID && !types.contains_key(&o) && !ask.contains(&o) {
                    wanted.insert(o);
                }
            }
            types.insert(r.get("oid"), info);
        }
    }
    let mut out = Shapes::new();
    for r in &rows {
        let oid: u32 = r.get("type_oid");
        let display: String = r.get("display");
        let signature = if oid < FIRST_USER_OID {
            display.clone()
        } else {
            format!("{display} {}", made_of(&types, oid, 0))
        };
        let collation: Option<String> = r.get("collation");
        out.entry((r.get("schema"), r.get("name")))
            .or_default()
            .columns
            .push(Column {
                name: r.get("col"),
                display,
                signature,
                not_null: r.get("not_null"),
                has_default: r.get("has_default"),
                generated: r.get("generated"),
                identity: r.get("identity"),
                collation: collation.map(|c| (c, r.get("deterministic"))),
                binary_safe: binary_safe(&types, oid, 0),
                builtin: oid < FIRST_USER_OID,
            });
    }
    Ok(out)
}

/// What a user type is made of, in words that differ when the types do.
fn made_of(types: &HashMap<u32, TypeInfo>, oid: u32, depth: usize) -> String {
    let Some(t) = types.get(&oid).filter(|_| depth < 8) else {
        return String::new();
    };
    let inner = |o: u32, shown: &str| {
        if o >= FIRST_USER_OID {
            format!("{shown} {}", made_of(types, o, depth + 1))
        } else {
            shown.to_owned()
        }
    };
    match t.kind.as_str() {
        _ if t.elem != 0 => {
            let elem = types.get(&t.elem).map_or("", |e| e.name.as_str());
            format!("(array of {})", inner(t.elem, elem))
        }
        "e" => format!("(enum: {})", t.labels.join(", ")),
        "d" => {
            let mut s = format!("(domain over {}", inner(t.base, &t.base_name));
            if t.not_null {
                s.push_str(", NOT NULL");
            }
            for c in &t.checks {
                s.push_str(", ");
                s.push_str(c);
            }
            s.push(')');
            s
        }
        "c" => format!(
            "(composite: {})",
            t.attributes
                .iter()
                .map(|(n, o, t)| format!("{} {}", shown(n), inner(*o, t)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "r" => format!("(range of {})", inner(t.subtype, &t.subtype_name)),
        _ => String::new(),
    }
}

/// Whether a value's binary COPY form reads the same in another database.
/// Enums travel as labels, domains as their base type, arrays as their
/// elements (checked on PostgreSQL 15: an enum array loads between databases
/// whose enum oids differ). Composites of user types carry their
/// attributes' oids and extension types have their own binary forms, so
/// those (rare) tables go as text, which is always read by name and value.
fn binary_safe(types: &HashMap<u32, TypeInfo>, oid: u32, depth: usize) -> bool {
    if oid < FIRST_USER_OID {
        return true;
    }
    match types.get(&oid).filter(|_| depth < 8) {
        Some(t) if t.elem != 0 => binary_safe(types, t.elem, depth + 1),
        Some(t) if t.kind == "e" => true,
        Some(t) if t.kind == "d" => binary_safe(types, t.base, depth + 1),
        _ => false,
    }
}

/// `schema.table[.column]` as a person writes it: quoted only where needed.
fn object(schema: &str, table: &str, column: Option<&str>) -> String {
    let mut s = format!("{}.{}", shown(schema), shown(table));
    if let Some(c) = column {
        s.push('.');
        s.push_str(&shown(c));
    }
    s
}

/// A name bare when PostgreSQL would read it back unchanged, else quoted.
fn shown(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        name.to_owned()
    } else {
        ident(name)
    }
}

/// Compares production's shapes with staging's.
pub fn compare(production: &Shapes, staging: &Shapes) -> Compatibility {
    let mut out = Compatibility {
        tables: production.len(),
        ..Default::default()
    };
    let mut diff = |object: String, production: String, staging: String, lossless_cast| {
        out.differences.push(Difference {
            object,
            production,
            staging,
            lossless_cast,
            note_only: false,
        })
    };
    let mut formats = BTreeMap::new();
    for ((schema, table), prod) in production {
        let Some(stag) = staging.get(&(schema.clone(), table.clone())) else {
            diff(
                object(schema, table, None),
                "table".into(),
                "missing (create it on staging, or exclude it from the table mappings)".into(),
                false,
            );
            continue;
        };
        let mut format = CopyFormat {
            binary: true,
            casts: BTreeMap::new(),
        };
        for p in &prod.columns {
            let at = object(schema, table, Some(&p.name));
            let Some(s) = stag.columns.iter().find(|s| s.name == p.name) else {
                diff(at, p.display.clone(), "missing column".into(), false);
                continue;
            };
            let generated = match (p.generated, s.generated) {
                // Not copied: staging computes its own.
                (true, true) => continue,
                (false, false) => None,
                (true, false) => Some(("generated", "plain column (would stay empty)")),
                (false, true) => Some(("plain column", "generated (the load cannot write it)")),
            };
            if let Some((on_prod, on_staging)) = generated {
                let (pd, sd) = (&p.display, &s.display);
                diff(
                    at,
                    format!("{pd} {on_prod}"),
                    format!("{sd} {on_staging}"),
                    false,
                );
                continue;
            }
            if p.signature != s.signature {
                let cast = p.builtin && s.builtin && lossless(&p.display, &s.display);
                let (pd, sd) = if p.display != s.display {
                    (p.display.clone(), s.display.clone())
                } else {
                    (p.signature.clone(), s.signature.clone())
                };
                diff(at.clone(), pd, sd, cast);
                if cast {
                    format.casts.insert(p.name.clone(), s.display.clone());
                }
            } else if changes_equality(&p.collation, &s.collation) {
                let show = |c: &Option<(String, bool)>| match c {
                    Some((n, true)) => format!("collation {n}"),
                    Some((n, false)) => format!("collation {n} (nondeterministic)"),
                    None => "no collation".into(),
                };
                diff(
                    at,
                    format!("{} {}", p.display, show(&p.collation)),
                    format!("{} {}", s.display, show(&s.collation)),
                    false,
                );
            }
            format.binary &= p.binary_safe && s.binary_safe;
        }
        for s in &stag.columns {
            let only_staging = !prod.columns.iter().any(|p| p.name == s.name);
            if only_staging && s.not_null && !s.has_default && !s.identity && !s.generated {
                diff(
                    object(schema, table, Some(&s.name)),
                    "missing column".into(),
                    format!(
                        "{} NOT NULL without a default (the load would fail)",
                        s.display
                    ),
                    false,
                );
            }
        }
        formats.insert((schema.clone(), table.clone()), format);
    }
    // Staging's own tables (the selection covers them on staging only): the
    // load never touches them, their FKs to synced tables come back. Said,
    // not refused; a mapping that names one is refused as matching nothing.
    for (schema, table) in staging.keys() {
        if !production.contains_key(&(schema.clone(), table.clone())) {
            out.differences.push(Difference {
                object: object(schema, table, None),
                production: "missing".into(),
                staging: "table".into(),
                lossless_cast: false,
                note_only: true,
            });
        }
    }
    out.formats = formats;
    out
}

/// Two collations differ in a way that changes which values are equal.
fn changes_equality(p: &Option<(String, bool)>, s: &Option<(String, bool)>) -> bool {
    let name = |c: &Option<(String, bool)>| c.as_ref().map(|c| c.0.clone());
    let nondeterministic = |c: &Option<(String, bool)>| c.as_ref().is_some_and(|c| !c.1);
    name(p) != name(s) && (nondeterministic(p) || nondeterministic(s))
}

/// A built-in type and its modifiers, from `format_type`'s text.
/// (`timestamp(3) with time zone` has its modifier inside the name.)
fn parse_type(t: &str) -> (String, Vec<i64>) {
    let Some((open, close)) = t.find('(').zip(t.find(')')).filter(|(o, c)| o < c) else {
        return (t.to_owned(), Vec::new());
    };
    let args = t[open + 1..close]
        .split(',')
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    (format!("{}{}", t[..open].trim_end(), &t[close + 1..]), args)
}

/// Whether every value of built-in type `from` is kept exactly by `CAST(v AS to)`.
pub fn lossless(from: &str, to: &str) -> bool {
    const INTS: [&str; 3] = ["smallint", "integer", "bigint"];
    const DIGITS: [i64; 3] = [5, 10, 19];
    let (f, fa) = parse_type(from);
    let (t, ta) = parse_type(to);
    let int_rank = |n: &str| INTS.iter().position(|i| *i == n);
    match (f.as_str(), t.as_str()) {
        _ if from == to => true,
        (f, t) if int_rank(f).is_some() && int_rank(t).is_some() => int_rank(f) <= int_rank(t),
        (f, "numeric") if int_rank(f).is_some() => match ta.as_slice() {
            [] => true,
            [p] | [p, 0] => *p >= DIGITS[int_rank(f).unwrap_or(2)],
            _ => false,
        },
        ("real", "double precision") => true,
        ("numeric", "numeric") => match (fa.as_slice(), ta.as_slice()) {
            (_, []) => true,
            ([fp], [tp]) | ([fp, 0], [tp]) | ([fp], [tp, 0]) | ([fp, 0], [tp, 0]) => tp >= fp,
            ([fp, fs], [tp, ts]) => ts >= fs && tp - ts >= fp - fs,
            ([fp], [tp, ts]) => tp - ts >= *fp,
            _ => false,
        },
        ("character varying" | "text", "text") => true,
        ("character varying", "character varying") => match (fa.as_slice(), ta.as_slice()) {
            (_, []) => true,
            ([n], [m]) => m >= n,
            _ => false,
        },
        ("text", "character varying") => ta.is_empty(),
        ("bit varying", "bit varying") => match (fa.as_slice(), ta.as_slice()) {
            (_, []) => true,
            ([n], [m]) => m >= n,
            _ => false,
        },
        (
            "timestamp without time zone"
            | "timestamp with time zone"
            | "time without time zone"
            | "interval",
            _,
        ) if f == t => match (fa.as_slice(), ta.as_slice()) {
            (_, []) => true,
            ([p], [q]) => q >= p,
            _ => false,
        },
        _ => false,
    }
}

/// The two databases' shapes compared for `selection` (each side read with
/// its own connection, outside any transaction).
pub async fn check(
    production: &Client,
    staging: &Client,
    selection: &Selection,
) -> Result<Compatibility, StepError> {
    let p = shapes(production, selection).await?;
    let s = shapes(staging, selection).await?;
    Ok(compare(&p, &s))
}

/// Everything that must hold between production and staging before any
/// change: two different databases, a selection that covers tables on
/// production (every include rule matching one), and compatible schemas.
/// Both clients must be outside any transaction.
pub async fn gate(
    production: &Client,
    staging: &Client,
    selection: &Selection,
    allow_casts: bool,
) -> Result<Compatibility, StepError> {
    if same_database(production, staging).await? {
        return Err(StepError::SameDatabase(
            "the production connection and the staging connection reach one database".into(),
        ));
    }
    covered(production, selection).await?;
    let c = check(production, staging, selection).await?;
    c.require(allow_casts)?;
    Ok(c)
}

/// Refuses a selection that covers no production table, or has a rule that matches none.
pub async fn covered(production: &Client, selection: &Selection) -> Result<(), StepError> {
    let ctx = "listing production's tables";
    let all: Vec<(String, String)> = production
        .query_typed(crate::sql::LIST_TABLES, &[])
        .await
        .map_err(|e| classify(e, ctx))?
        .iter()
        .map(|r| (r.get("schema"), r.get("name")))
        .collect();
    let unmatched = selection.unmatched_rules(&all);
    if !unmatched.is_empty() {
        let (what, verb) = if unmatched.len() == 1 {
            ("table-mapping", "matches")
        } else {
            ("table-mappings", "match")
        };
        return Err(StepError::NothingSelected(format!(
            "{what} {} {verb} no table on production",
            unmatched.join(", ")
        )));
    }
    if !all.iter().any(|(s, t)| selection.matches(s, t)) {
        return Err(StepError::NothingSelected(
            "the table selection matches no table on production".into(),
        ));
    }
    Ok(())
}

/// Whether two sessions are connected to the very same database: the
/// server's system identifier and the database's oid, not the URL (two
/// host names, a socket and a TCP address can all reach one database).
pub async fn same_database(a: &Client, b: &Client) -> Result<bool, StepError> {
    let ctx = "comparing the source and target databases";
    async fn identity(c: &Client) -> Result<(Option<String>, u32), tokio_postgres::Error> {
        let r = c
            .query_one(
                "SELECT (SELECT system_identifier FROM pg_catalog.pg_control_system())::text, \
                 (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())",
                &[],
            )
            .await?;
        Ok((r.get(0), r.get(1)))
    }
    match (identity(a).await, identity(b).await) {
        (Ok(x), Ok(y)) if x.0.is_some() => Ok(x == y),
        // pg_control_system() withheld (some managed servers): an advisory
        // lock taken on one session is seen held on the other only in the same database.
        _ => lock_probe(a, b).await.map_err(|e| classify(e, ctx)),
    }
}

async fn lock_probe(a: &Client, b: &Client) -> Result<bool, tokio_postgres::Error> {
    let key: i64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(1)
        ^ (i64::from(std::process::id()) << 40);
    a.execute("SELECT pg_catalog.pg_advisory_lock($1)", &[&key])
        .await?;
    let got: bool = b
        .query_one("SELECT pg_catalog.pg_try_advisory_lock($1)", &[&key])
        .await?
        .get(0);
    if got {
        b.execute("SELECT pg_catalog.pg_advisory_unlock($1)", &[&key])
            .await?;
    }
    a.execute("SELECT pg_catalog.pg_advisory_unlock($1)", &[&key])
        .await?;
    Ok(!got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lossless_casts_only_widen() {
        for (f, t) in [
            ("smallint", "integer"),
            ("integer", "bigint"),
            ("integer", "numeric"),
            ("integer", "numeric(10,0)"),
            ("bigint", "numeric(19)"),
            ("real", "double precision"),
            ("character varying(5)", "character varying(10)"),
            ("character varying(5)", "text"),
            ("text", "character varying"),
            ("numeric(10,2)", "numeric"),
            ("numeric(10,2)", "numeric(12,2)"),
            ("numeric(10,2)", "numeric(11,3)"),
            (
                "timestamp(3) without time zone",
                "timestamp without time zone",
            ),
            ("timestamp(3) with time zone", "timestamp(6) with time zone"),
        ] {
            assert!(lossless(f, t), "{f} → {t}");
        }
        for (f, t) in [
            ("integer", "real"),
            ("integer", "date"),
            ("bigint", "integer"),
            ("integer", "numeric(5,0)"),
            ("integer", "numeric(12,2)"),
            ("double precision", "real"),
            ("text", "character varying(5)"),
            ("character varying(10)", "character varying(5)"),
            ("numeric", "numeric(10,2)"),
            ("numeric(10,2)", "numeric(10,3)"),
            ("numeric(10,2)", "numeric(12,1)"),
            ("character(5)", "text"),
            ("timestamp without time zone", "timestamp with time zone"),
            (
                "timestamp(6) without time zone",
                "timestamp(3) without time zone",
            ),
            ("json", "jsonb"),
        ] {
            assert!(!lossless(f, t), "{f} → {t}");
        }
    }

    fn col(name: &str, display: &str) -> Column {
        Column {
            name: name.into(),
            display: display.into(),
            signature: display.into(),
            not_null: false,
            has_default: false,
            generated: false,
            identity: false,
            collation: None,
            binary_safe: true,
            builtin: true,
        }
    }

    fn shapes(tables: &[(&str, Vec<Column>)]) -> Shapes {
        tables
            .iter()
            .map(|(n, cols)| {
                (
                    ("public".to_owned(), (*n).to_owned()),
                    TableShape {
                        columns: cols.clone(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn every_difference_is_listed_and_order_does_not_matter() {
        let prod = shapes(&[
            (
                "a",
                vec![
                    col("id", "integer"),
                    col("v", "integer"),
                    col("gone", "text"),
                ],
            ),
            ("only_prod", vec![col("id", "integer")]),
        ]);
        let mut must = col("must", "text");
        must.not_null = true;
        let stag = shapes(&[
            ("a", vec![col("v", "real"), col("id", "integer"), must]),
            ("only_stag", vec![col("id", "integer")]),
        ]);
        let c = compare(&prod, &stag);
        let shown: Vec<String> = c.differences.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 5, "{shown:#?}");
        assert!(shown[0].starts_with("public.a.v: production integer / staging real"));
        assert!(shown[1].starts_with("public.a.gone: production text / staging missing column"));
        assert!(shown[2].contains("public.a.must") && shown[2].contains("NOT NULL"));
        assert!(shown[3].starts_with("public.only_prod: production table / staging missing"));
        assert!(shown[4].starts_with("public.only_stag: production missing"));
        assert_eq!(
            c.blocking(true).len(),
            4,
            "staging's own table refuses nothing"
        );
        let e = c.require(true).unwrap_err();
        assert_eq!(e.name(), "SchemaMismatch");
        // Same columns in another order: nothing to report.
        let swapped = shapes(&[("a", vec![col("v", "integer"), col("id", "integer")])]);
        let same = shapes(&[("a", vec![col("id", "integer"), col("v", "integer")])]);
        assert!(compare(&same, &swapped).differences.is_empty());
    }

    #[test]
    fn a_lossless_difference_is_cast_only_when_allowed() {
        let prod = shapes(&[("a", vec![col("n", "integer")])]);
        let stag = shapes(&[("a", vec![col("n", "bigint")])]);
        let c = compare(&prod, &stag);
        assert!(c.differences[0].lossless_cast);
        assert!(c.require(false).is_err());
        assert!(c.require(true).is_ok());
        let f = &c.formats[&("public".to_owned(), "a".to_owned())];
        assert_eq!(f.casts.get("n").map(String::as_str), Some("bigint"));
    }
}

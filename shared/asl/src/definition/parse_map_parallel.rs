//! Parallel and Map states: `Branches` and `ItemProcessor` (or the legacy
//! `Iterator`) are graphs of their own, parsed and checked like the machine's;
//! plus Map's `ItemsPath`, `ItemSelector`, concurrency and tolerated failures.

use super::model::{Kind, MapSpec, NumOrPath};
use super::parser::{loc, Cx};
use serde_json::{Map, Value};
use std::sync::Arc;

impl Cx {
    /// Parallel: `Branches`, each a graph of its own.
    pub(super) fn parallel(&mut self, name: &str, o: &Map<String, Value>) -> Kind {
        let mut branches = Vec::new();
        match o.get("Branches") {
            Some(Value::Array(bs)) if !bs.is_empty() => {
                for (i, b) in bs.iter().enumerate() {
                    let scope = format!("State '{name}', field Branches[{i}]: ");
                    match b.as_object() {
                        Some(bo) => {
                            self.check_fields(
                                &format!("State '{name}', field Branches[{i}]"),
                                bo,
                                &["StartAt", "States", "Comment"],
                            );
                            if let Some(g) = self.graph(&scope, bo) {
                                branches.push(Arc::new(g));
                            }
                        }
                        None => self.err(format!("{scope}must be an object")),
                    }
                }
            }
            _ => self.err(format!(
                "{}: required, a non-empty array of branches",
                loc(name, "Branches")
            )),
        }
        Kind::Parallel { branches }
    }

    pub(super) fn map(&mut self, name: &str, o: &Map<String, Value>) -> Option<Kind> {
        let (field, proc_v) = match (o.get("ItemProcessor"), o.get("Iterator")) {
            (Some(_), Some(_)) => {
                self.err(format!(
                    "State '{name}': use either 'ItemProcessor' or 'Iterator', not both"
                ));
                return None;
            }
            (Some(p), None) => ("ItemProcessor", p),
            (None, Some(p)) => ("Iterator", p),
            (None, None) => {
                self.err(format!(
                    "State '{name}': missing required field 'ItemProcessor' (or legacy 'Iterator')"
                ));
                return None;
            }
        };
        if o.contains_key("ItemSelector") && o.contains_key("Parameters") {
            self.err(format!(
                "State '{name}': use either 'ItemSelector' or 'Parameters', not both"
            ));
        }
        for f in ["ItemReader", "ResultWriter", "ItemBatcher"] {
            if o.contains_key(f) {
                self.err(format!(
                    "{}: not supported by this local engine (distributed Map item readers and writers need S3)",
                    loc(name, f)
                ));
            }
        }
        let Some(po) = proc_v.as_object() else {
            self.err(format!("{}: must be an object", loc(name, field)));
            return None;
        };
        self.check_fields(
            &loc(name, field),
            po,
            &["StartAt", "States", "Comment", "ProcessorConfig"],
        );
        let mut distributed = false;
        if let Some(pc) = po.get("ProcessorConfig") {
            match pc.as_object() {
                Some(pco) => {
                    self.check_fields(
                        &format!("{}.ProcessorConfig", loc(name, field)),
                        pco,
                        &["Mode", "ExecutionType"],
                    );
                    match pco.get("Mode").and_then(Value::as_str) {
                        None | Some("INLINE") => {}
                        Some("DISTRIBUTED") => distributed = true,
                        Some(m) => self.err(format!(
                            "{}.ProcessorConfig.Mode: must be INLINE or DISTRIBUTED, got '{m}'",
                            loc(name, field)
                        )),
                    }
                }
                None => self.err(format!(
                    "{}.ProcessorConfig: must be an object",
                    loc(name, field)
                )),
            }
        }
        let scope = format!("{}: ", loc(name, field));
        let processor = Arc::new(self.graph(&scope, po)?);
        let item_selector = if o.contains_key("ItemSelector") {
            self.template(name, o, "ItemSelector")
        } else {
            None
        };
        let items_path = self.path_field(name, o, "ItemsPath", false);
        let max_concurrency = self.int_or_path(name, o, "MaxConcurrency", 0);
        let tolerated_count = self.num_or_path(name, o, "ToleratedFailureCount");
        let tolerated_percentage = self.num_or_path(name, o, "ToleratedFailurePercentage");
        if let Some(NumOrPath::Num(p)) = tolerated_percentage {
            if !(0.0..=100.0).contains(&p) {
                self.err(format!(
                    "{}: must be between 0 and 100",
                    loc(name, "ToleratedFailurePercentage")
                ));
            }
        }
        if let Some(NumOrPath::Num(c)) = tolerated_count {
            if c < 0.0 || c.fract() != 0.0 {
                self.err(format!(
                    "{}: must be a non-negative integer",
                    loc(name, "ToleratedFailureCount")
                ));
            }
        }
        Some(Kind::Map(Box::new(MapSpec {
            processor,
            distributed,
            items_path,
            item_selector,
            max_concurrency,
            tolerated_count,
            tolerated_percentage,
        })))
    }
}

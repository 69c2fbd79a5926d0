//! idsync: keeps an app's accounts (SCIM 2.0) true to a directory (LDAP / AD / Entra ID), safely.
//!
//! Data flows one way: `source` reads people, `app` reads accounts, `plan` decides
//! (pure), `safety` gates, `apply` writes, `journal` remembers, `report` renders.

pub mod app;
pub mod apply;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod console;
pub mod daemon;
pub mod escrow;
pub mod files;
pub mod groups;
pub mod hooks;
pub mod http;
pub mod journal;
pub mod mapping;
pub mod metrics;
pub mod model;
pub mod photo;
pub mod plan;
pub mod progress;
pub mod redact;
pub mod report;
pub mod roster;
pub mod run;
pub mod safety;
pub mod scope;
pub mod source;

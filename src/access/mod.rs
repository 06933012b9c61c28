//! The access model of DESIGN.md section 2: who may do what. `rules` decides (pure functions);
//! `store` keeps the records and gathers facts for the rules. Nothing here speaks HTTP.

pub mod reads;
pub mod rules;
pub mod store;
pub mod visible;

#[cfg(test)]
mod tests;

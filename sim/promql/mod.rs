pub mod rules;
pub mod template;


mod schedule;

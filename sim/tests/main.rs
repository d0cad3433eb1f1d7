
mod mesh;

//! GRUB 2 `grub.cfg`: `menuentry` and `submenu` blocks, `set`/`NAME=VALUE` variables
//! (expanded where their value is in the file), `linux`/`linux16`/`linuxefi`/`kernel`,
//! `initrd`/`initrd16`/`initrdefi`, `source`/`configfile` includes and `set default`.
//! Conditionals are not evaluated: both branches of an `if` run in order, so the last
//! `set` wins, which is what grub-mkconfig's own fallbacks amount to (pygrub reads grub.cfg
//! the same way). `function` bodies are skipped.

mod exec;
pub mod lex;

use super::{Include, Menu, ParseError};

/// A command or a block (`menuentry … { … }`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stmt {
    Cmd(Vec<lex::Part>, Vec<Vec<lex::Part>>),
    Block(Vec<Vec<lex::Part>>, Vec<Stmt>),
}

/// Parses `text` (the file `path`) with `include` reading sourced files.
pub fn parse(text: &str, include: &mut Include<'_>) -> Result<Menu, ParseError> {
    let mut state = exec::State::default();
    let stmts = statements(text)?;
    state.run(&stmts, include, 0)?;
    Ok(state.finish())
}

/// The statement tree of a script.
pub fn statements(text: &str) -> Result<Vec<Stmt>, ParseError> {
    let tokens = lex::lex(text);
    let mut pos = 0;
    let stmts = block(&tokens, &mut pos, 0)?;
    Ok(stmts)
}

/// Statements up to a '}' at this level (consumed) or the end.
fn block(tokens: &[lex::Token], pos: &mut usize, depth: usize) -> Result<Vec<Stmt>, ParseError> {
    use lex::Token;
    if depth > super::MAX_NESTING {
        return Err(ParseError(format!(
            "blocks nested more than {} deep",
            super::MAX_NESTING
        )));
    }
    let mut out = Vec::new();
    let mut words: Vec<Vec<lex::Part>> = Vec::new();
    while let Some(t) = tokens.get(*pos) {
        *pos += 1;
        match t {
            Token::Word(w) => words.push(w.clone()),
            Token::End => push_cmd(&mut out, &mut words),
            Token::Open => {
                let mut header = std::mem::take(&mut words);
                strip_keywords(&mut header);
                let body = block(tokens, pos, depth + 1)?;
                out.push(Stmt::Block(header, body));
            }
            Token::Close => {
                push_cmd(&mut out, &mut words);
                return Ok(out);
            }
        }
    }
    push_cmd(&mut out, &mut words);
    Ok(out)
}

/// Adds the command in `words`, without a leading `if`/`then`/`else`/`do` keyword: the
/// commands of every branch and loop body run once, in order.
fn push_cmd(out: &mut Vec<Stmt>, words: &mut Vec<Vec<lex::Part>>) {
    let mut w = std::mem::take(words);
    strip_keywords(&mut w);
    if !w.is_empty() {
        let name = w.remove(0);
        out.push(Stmt::Cmd(name, w));
    }
}

fn strip_keywords(w: &mut Vec<Vec<lex::Part>>) {
    while let Some([lex::Part::Lit(first)]) = w.first().map(Vec::as_slice) {
        let keyword = matches!(
            first.as_str(),
            "then" | "else" | "do" | "fi" | "done" | "elif" | "if" | "while" | "until" | "!"
        );
        if !keyword {
            break;
        }
        w.remove(0);
    }
}

#[cfg(test)]
mod tests;

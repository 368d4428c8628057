//! GRUB 2's script syntax, as far as menus need it: words with '…' and "…" quoting and
//! backslash escapes, `$name`/`${name}` references kept unexpanded (they are expanded
//! when the command runs, with the variables set by then), `#` comments, and `;`,
//! newlines, `{` and `}` as separators.

/// Part of a word: literal text or a variable reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    Lit(String),
    Var(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    Word(Vec<Part>),
    /// End of a command: newline or ';'.
    End,
    Open,
    Close,
}

pub fn lex(text: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut word: Vec<Part> = Vec::new();
    let mut in_word = false;
    let push_lit = |word: &mut Vec<Part>, c: char| match word.last_mut() {
        Some(Part::Lit(s)) => s.push(c),
        _ => word.push(Part::Lit(c.to_string())),
    };
    let flush = |out: &mut Vec<Token>, word: &mut Vec<Part>, in_word: &mut bool| {
        if *in_word {
            let w = std::mem::take(word);
            // A bare { or } is a block delimiter, not a word.
            match w.as_slice() {
                [Part::Lit(s)] if s == "{" => out.push(Token::Open),
                [Part::Lit(s)] if s == "}" => out.push(Token::Close),
                _ => out.push(Token::Word(w)),
            }
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' if !in_word => {
                while chars.peek().is_some_and(|c| *c != '\n') {
                    chars.next();
                }
            }
            '\n' | ';' => {
                flush(&mut out, &mut word, &mut in_word);
                out.push(Token::End);
            }
            c if c.is_whitespace() => flush(&mut out, &mut word, &mut in_word),
            '\\' => match chars.next() {
                // A line continuation joins lines; it makes no word by itself.
                Some('\n') | None => {}
                Some(c) => {
                    in_word = true;
                    push_lit(&mut word, c);
                }
            },
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    push_lit(&mut word, c);
                }
                // An empty '' still makes a word.
                if word.is_empty() {
                    word.push(Part::Lit(String::new()));
                }
            }
            '"' => {
                in_word = true;
                if word.is_empty() {
                    word.push(Part::Lit(String::new()));
                }
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(c @ ('"' | '\\' | '$')) => push_lit(&mut word, c),
                            Some('\n') | None => {}
                            Some(c) => {
                                push_lit(&mut word, '\\');
                                push_lit(&mut word, c);
                            }
                        },
                        '$' => variable(&mut chars, &mut word),
                        c => push_lit(&mut word, c),
                    }
                }
            }
            '$' => {
                in_word = true;
                variable(&mut chars, &mut word);
            }
            c => {
                in_word = true;
                push_lit(&mut word, c);
            }
        }
    }
    flush(&mut out, &mut word, &mut in_word);
    out
}

/// After a '$': `{name}` or a run of name characters (or one of `?#*@` and digits).
fn variable(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, word: &mut Vec<Part>) {
    let mut name = String::new();
    if chars.peek() == Some(&'{') {
        chars.next();
        for c in chars.by_ref() {
            if c == '}' {
                break;
            }
            name.push(c);
        }
    } else {
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                chars.next();
            } else if name.is_empty() && matches!(c, '?' | '#' | '*' | '@') {
                name.push(c);
                chars.next();
                break;
            } else {
                break;
            }
        }
    }
    if name.is_empty() {
        match word.last_mut() {
            Some(Part::Lit(s)) => s.push('$'),
            _ => word.push(Part::Lit("$".into())),
        }
    } else {
        word.push(Part::Var(name));
    }
}

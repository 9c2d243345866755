//! A tiny test runner: runs each test, prints `test NAME ... ok|FAILED`, then a summary.

/// Why a test did not pass.
pub enum NotPassed {
    /// A check failed (and printed why).
    Failed,
    /// The test does not apply to this board or configuration.
    Skipped(&'static str),
}

/// What a test returns.
pub type TestResult = Result<(), NotPassed>;

/// One named test.
pub struct Test {
    pub name: &'static str,
    pub run: fn() -> TestResult,
}

/// `test!(module::name)`: a [`Test`] named after its path.
macro_rules! test {
    ($module:ident :: $name:ident) => {
        $crate::harness::Test {
            name: concat!(stringify!($module), "::", stringify!($name)),
            run: $module::$name,
        }
    };
}

/// Returns `Err(())` from the test, after printing the location, when `cond` is false.
macro_rules! check {
    ($cond:expr $(,)?) => { check!($cond, "") };
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            println!("\n    check failed at {}:{}: {}  {}", file!(), line!(), stringify!($cond), format_args!($($msg)+));
            return Err($crate::harness::NotPassed::Failed);
        }
    };
}

/// Returns `Err(())` from the test, after printing both sides, when `a != b`.
macro_rules! check_eq {
    ($a:expr, $b:expr $(,)?) => { check_eq!($a, $b, "") };
    ($a:expr, $b:expr, $($msg:tt)+) => {
        match (&$a, &$b) {
            (a, b) => if *a != *b {
                println!("\n    check_eq failed at {}:{}: {}", file!(), line!(), format_args!($($msg)+));
                println!("      left:  {:?}", a);
                println!("      right: {:?}", b);
                return Err($crate::harness::NotPassed::Failed);
            }
        }
    };
}

/// Returns `Err(())` from the test when `a == b`.
macro_rules! check_ne {
    ($a:expr, $b:expr $(,)?) => {
        match (&$a, &$b) {
            (a, b) => {
                if *a == *b {
                    println!(
                        "\n    check_ne failed at {}:{}: both {:?}",
                        file!(),
                        line!(),
                        a
                    );
                    return Err($crate::harness::NotPassed::Failed);
                }
            }
        }
    };
}

/// Runs every test; returns how many failed. A panic ends the run at once (exit status 1,
/// after the test's name and the panic message).
pub fn run(board: &str, tests: &[Test]) -> u32 {
    println!("running {} tests on {}", tests.len(), board);
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for t in tests {
        print!("test {} ... ", t.name);
        match (t.run)() {
            Ok(()) => {
                println!("ok");
                passed += 1;
            }
            Err(NotPassed::Failed) => {
                println!("test {} ... FAILED", t.name);
                failed += 1;
            }
            Err(NotPassed::Skipped(why)) => {
                println!("skipped ({})", why);
                skipped += 1;
            }
        }
    }
    println!(
        "{}: {} passed, {} failed, {} skipped",
        board, passed, failed, skipped
    );
    failed
}
